// Every place where pushpool's rendering is allowed to differ from Prefect's, and why. The
// comparison (harness.ts) skips nothing else, and reports which of these each case relied on.

export const DOCUMENTED_DIFFERENCES = {
  'random-job-name-suffix': 'Both name a per-run job "<slug>-<7 random hex>"; only the slug is compared.',
  'environment-placeholders': '{{ $NAME }} reads the Prefect worker\'s own environment; pushpool never exposes its environment and renders "". render.py unsets every variable a case\'s {{ $NAME }} placeholders name, which is the state in which Prefect renders "" as well.',
  'invalid-prefect-job-name': 'Where Prefect\'s job id would be refused by Cloud Run (a name that slugs to nothing gives "None-<hex>", a slug starting with a digit gives "<digit>…"), pushpool uses "flow-run-…"; the comparison checks that pushpool\'s id is valid instead.',
  'v1-metadata-name': 'Prefect\'s cloud-run (v1) worker fills a missing metadata.name with slug(30)-<32 random hex>; pushpool never sends a v1 body (its v2 job id is the per-run name), so that generated name is not compared.',
  'gpu-timeout-cap': 'A GPU job (an accelerator or an nvidia.com/gpu limit) with a task timeout above Cloud Run\'s GPU cap (1 hour, 12 hours under a preview launch stage): Prefect\'s worker sends it and Cloud Run refuses it at CreateJob; pushpool refuses it before launch with a message naming the fix. The rendered job is still compared.',
  'block-reference-validation': 'Prefect\'s server schema wraps block types in oneOf, which refuses a {"$ref": …} block reference in job variables (it matches both branches); its worker renders them. pushpool validates with anyOf and accepts them.'
} as const

export type DocumentedDifference = keyof typeof DOCUMENTED_DIFFERENCES
