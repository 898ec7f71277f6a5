// The steps both Cloud Run workers apply to the job's first container after rendering:
// default or split the command, split string args, default the image
// (`_populate_or_format_command`, `_format_args_if_present`, `_populate_image_if_not_present`).

import { TemplateError } from '../failures.ts'
import { shlexSplit, ShlexError } from './shlex.ts'
import { slugify } from './slugify.ts'
import { isPlainObject } from './templating.ts'

/** What `prefect flow-run execute` needs to find its flow run: PREFECT__FLOW_RUN_ID in the env. */
const FLOW_RUN_COMMAND = ['prefect', 'flow-run', 'execute']

export function firstContainer (containers: unknown, field: string): Record<string, unknown> {
  if (!Array.isArray(containers) || containers.length === 0) {
    throw new TemplateError(field, `The job body has no container at ${field}[0]; add one (at least {"image": "{{ image }}"}) to the work pool's base job template.`)
  }
  const container: unknown = containers[0]
  if (!isPlainObject(container)) throw new TemplateError(`${field}[0]`, `${field}[0] must be a container object; fix the work pool's base job template.`)
  return container
}

/** A missing command runs the flow run; a string command is split like a POSIX shell would. */
export function populateOrFormatCommand (container: Record<string, unknown>, field: string): void {
  const command = container.command
  if (command === undefined || command === null) container.command = [...FLOW_RUN_COMMAND]
  else if (typeof command === 'string') container.command = split(command, `${field}.command`)
}

export function formatArgs (container: Record<string, unknown>, field: string): void {
  if (typeof container.args === 'string') container.args = split(container.args, `${field}.args`)
}

/** The versions the default image is named after: the Prefect server's, and the Python minor version. */
export interface ImageDefaults {
  prefectVersion: string
  pythonVersion: string
}

/** Only a container with no `image` key gets the default: an explicit null is left alone, as Prefect does. */
export function populateImage (container: Record<string, unknown>, image: ImageDefaults): void {
  if (!Object.hasOwn(container, 'image')) container.image = `docker.io/${prefectImageName(image.prefectVersion, image.pythonVersion)}`
}

/**
 * `get_prefect_image_name()`: `prefecthq/prefect:<version>-python<x.y>`. Prefect builds from a
 * development checkout (a `+local` version) use a prefect-dev image tagged by git sha, which
 * pushpool cannot know; their public version is used instead.
 */
export function prefectImageName (prefectVersion: string, pythonVersion: string): string {
  const publicVersion = prefectVersion.split('+')[0]
  const tag = slugify(`${publicVersion}-python${pythonVersion}`, { lowercase: false, maxLength: 128, disallowed: /[^a-zA-Z0-9_.-]+/gu })
  return `prefecthq/prefect:${tag}`
}

function split (text: string, field: string): string[] {
  try {
    return shlexSplit(text)
  } catch (error) {
    if (!(error instanceof ShlexError)) throw error
    throw new TemplateError(field, `${field} cannot be split into arguments (${error.message}); balance its quotes or give it as a list.`)
  }
}
