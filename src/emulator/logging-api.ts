// Cloud Logging's REST entries.list on the emulator's HTTP side: POST /v2/entries:list, request and
// response as https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list documents them.
import { bearerToken, jsonBody, type Route } from './http.ts'
import type { LogStore } from './log-entries.ts'

export function loggingRoutes (store: LogStore): Route[] {
  return [{
    method: 'POST',
    path: /^\/v2\/entries:list$/,
    name: 'ListLogEntries',
    service: 'logging.googleapis.com',
    handle: call => {
      bearerToken(call)
      const { entries, nextPageToken } = store.list(jsonBody(call))
      // proto3 JSON leaves out an empty list and an empty token.
      return { body: { ...(entries.length ? { entries } : {}), ...(nextPageToken ? { nextPageToken } : {}) } }
    }
  }]
}
