// pino options for Cloud Logging: JSON lines whose `severity` Cloud Logging reads, `message` as
// the text field, and redaction of every header or field that can carry a credential.
import type { LoggerOptions } from 'pino'

const SEVERITY: Record<string, string> = {
  trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL'
}

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["webhook-signature"]',
  'headers.authorization',
  '*.authorization',
  '*.private_key',
  '*.service_account_info',
  '*.PREFECT_API_AUTH_STRING',
  '*.PREFECT_API_KEY',
  'config.webhookSecrets',
  'config.adminTokens',
  'config.prefectAuthString',
  'config.prefectApiKey'
]

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    messageKey: 'message',
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: {
      level: label => ({ severity: SEVERITY[label] ?? 'DEFAULT' })
    },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
}
