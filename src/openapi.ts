// openapi.yaml is the HTTP contract and the single source of the route schemas: its components
// are registered with Fastify, so a response that disagrees with the spec fails serialisation and
// the spec cannot drift from what the routes send. The schemas arrive already parsed, from
// src/openapi-schemas.ts (generated from openapi.yaml, and held equal to it by the contract
// test), so that start-up neither loads a YAML parser nor parses the spec.
import { readFileSync } from 'node:fs'
import { componentSchemaSources } from './openapi-schemas.ts'

// Both src/openapi.ts and dist/openapi.js sit one level below the file.
const SPEC_PATH = new URL('../openapi.yaml', import.meta.url)

let text: string | null = null

/** openapi.yaml's text, as GET /openapi.yaml serves it. */
export function openApiText (): string {
  text ??= readFileSync(SPEC_PATH, 'utf8')
  return text
}

/** The spec's component schemas with `$id`s and `$ref`s Fastify's ajv can resolve (`Name#`). */
export function componentSchemas (): Array<Record<string, unknown>> {
  return Object.entries(componentSchemaSources).map(([name, schema]) => ({ $id: name, ...rewriteRefs(schema) as object }))
}

/** A reference to one component schema, for a route's schema. */
export const ref = (name: string): { $ref: string } => ({ $ref: `${name}#` })

function rewriteRefs (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs)
  if (node === null || typeof node !== 'object') return node
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    out[key] = key === '$ref' && typeof value === 'string'
      ? value.replace(/^#\/components\/schemas\/(.+)$/, '$1#')
      : key === 'description' ? value : rewriteRefs(value)
  }
  return out
}
