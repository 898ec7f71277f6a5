// Creates (or verifies) the Prefect virtualenv that tests, the demo and benchmarks use, printing
// pip's progress. CI runs it first, so a broken install fails loudly before any test starts.
import { ensurePrefectVenv } from '../src/devstack/venv.ts'

const venv = await ensurePrefectVenv({ onProgress: line => { process.stdout.write(`  ${line}\n`) } })
process.stdout.write(`prefect venv ready: ${venv.dir}\n`)
