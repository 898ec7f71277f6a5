// The routes' validators and serializers, compiled ahead of time. From the sources there are none:
// Fastify compiles each route's schemas at start-up (ajv and fast-json-stringify, ~110 ms of a
// cold start's CPU on the loaded bench machine). The production bundle (scripts/build.ts) replaces
// this module with the code scripts/precompile-schemas.ts generated from the same routes.
import type { FastifyServerOptions } from 'fastify'

/** Fastify's schema controller for precompiled routes, or undefined to compile at start-up. */
export function precompiledSchemaController (): FastifyServerOptions['schemaController'] {
  return undefined
}
