// Both Cloud Run workers warn when the Prefect API key or auth string would reach the container as
// a plaintext environment variable instead of a Secret Manager reference.

const PREFECT_CREDENTIAL_VARIABLES = {
  PREFECT_API_KEY: 'prefect_api_key_secret',
  PREFECT_API_AUTH_STRING: 'prefect_api_auth_string_secret'
} as const

export type PrefectCredentialVariable = keyof typeof PREFECT_CREDENTIAL_VARIABLES

/** Which of the two variables a Secret Manager reference supplies instead. */
export type SecretBacked = Record<PrefectCredentialVariable, boolean>

export function plaintextCredentialWarnings (env: Record<string, string>, secretBacked: SecretBacked, offersEnvFromSecrets: boolean): string[] {
  const warnings: string[] = []
  for (const [name, secretVariable] of Object.entries(PREFECT_CREDENTIAL_VARIABLES)) {
    if (!Object.hasOwn(env, name) || secretBacked[name as PrefectCredentialVariable]) continue
    const alternatives = offersEnvFromSecrets ? `'${secretVariable}' or 'env_from_secrets'` : `'${secretVariable}'`
    warnings.push(`${name} is provided as a plaintext environment variable. For better security, consider providing it as a secret using ${alternatives} in your base job template.`)
  }
  return warnings
}
