import t from 'tap'
import { convertV1JobToV2 } from '../../src/jobconfig/v1-to-v2.ts'
import { TemplateError } from '../../src/failures.ts'

function v1Job (): Record<string, any> {
  return {
    apiVersion: 'run.googleapis.com/v1',
    kind: 'Job',
    metadata: {
      name: 'crimson-wombat-0123456789abcdef0123456789abcdef',
      namespace: 'acme-prod',
      labels: { 'prefect-io-flow-run-id': 'fr', owner: 'data' },
      annotations: {
        'run.googleapis.com/launch-stage': 'BETA',
        'run.googleapis.com/client-name': 'prefect',
        'acme.com/note': 'kept'
      }
    },
    spec: {
      template: {
        metadata: {
          labels: { 'prefect-io-flow-run-id': 'fr' },
          annotations: {
            'run.googleapis.com/vpc-access-connector': 'etl-connector',
            'run.googleapis.com/vpc-access-egress': 'all-traffic',
            'run.googleapis.com/execution-environment': 'gen2',
            'autoscaling.knative.dev/maxScale': '3'
          }
        },
        spec: {
          parallelism: 2,
          taskCount: 4,
          template: {
            spec: {
              containers: [{
                name: 'flow',
                image: 'repo/etl:1',
                command: ['prefect', 'flow-run', 'execute'],
                args: ['--x'],
                env: [
                  { name: 'PLAIN', value: 'v' },
                  { name: 'PREFECT_API_KEY', valueFrom: { secretKeyRef: { name: 'prefect-api-key', key: 'latest' } } }
                ],
                resources: { limits: { cpu: '2000m', memory: '1Gi' }, requests: { cpu: '2000m', memory: '1Gi' } },
                volumeMounts: [{ name: 'creds', mountPath: '/secrets' }]
              }],
              volumes: [{ name: 'creds', secret: { secretName: 'sa-key', items: [{ key: '3', path: 'key.json' }] } }],
              timeoutSeconds: '900',
              serviceAccountName: 'runner@acme-prod.iam.gserviceaccount.com',
              maxRetries: 1
            }
          }
        }
      }
    }
  }
}

t.test('a v1 job becomes the equivalent v2 job', async (t) => {
  const { job, warnings } = convertV1JobToV2(v1Job())
  t.same(job, {
    template: {
      template: {
        containers: [{
          name: 'flow',
          image: 'repo/etl:1',
          command: ['prefect', 'flow-run', 'execute'],
          args: ['--x'],
          env: [
            { name: 'PLAIN', value: 'v' },
            { name: 'PREFECT_API_KEY', valueSource: { secretKeyRef: { secret: 'prefect-api-key', version: 'latest' } } }
          ],
          resources: { limits: { cpu: '2000m', memory: '1Gi' } },
          volumeMounts: [{ name: 'creds', mountPath: '/secrets' }]
        }],
        volumes: [{ name: 'creds', secret: { secret: 'sa-key', items: [{ version: '3', path: 'key.json' }] } }],
        timeout: '900s',
        serviceAccount: 'runner@acme-prod.iam.gserviceaccount.com',
        maxRetries: 1,
        vpcAccess: { connector: 'etl-connector', egress: 'ALL_TRAFFIC' },
        executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2'
      },
      labels: { 'prefect-io-flow-run-id': 'fr' },
      parallelism: 2,
      taskCount: 4
    },
    launchStage: 'BETA',
    labels: { 'prefect-io-flow-run-id': 'fr', owner: 'data' },
    annotations: { 'acme.com/note': 'kept' }
  })
  t.same(warnings, [
    'Dropped metadata.annotations key run.googleapis.com/client-name: the Cloud Run v2 API rejects the run.googleapis.com/ namespace.',
    'Dropped spec.template.metadata.annotations key autoscaling.knative.dev/maxScale: the Cloud Run v2 API rejects the autoscaling.knative.dev/ namespace.'
  ])
})

t.test('unset v1 values leave the v2 fields unset', async (t) => {
  const v1 = v1Job()
  const taskSpec = v1.spec.template.spec.template.spec
  delete taskSpec.timeoutSeconds
  delete taskSpec.serviceAccountName
  delete v1.spec.template.metadata
  const { job } = convertV1JobToV2(v1)
  t.equal(job.template.template.timeout, undefined)
  t.equal(job.template.template.serviceAccount, undefined)
  t.equal(job.template.template.vpcAccess, undefined)
  t.equal(job.template.labels, undefined)
})

t.test('v1 values without a v2 equivalent fail with the path named', async (t) => {
  const unknownField = v1Job()
  unknownField.spec.template.spec.template.spec.nodeSelector = { zone: 'a' }
  t.throws(() => convertV1JobToV2(unknownField), { name: 'TemplateError', field: 'job_configuration.job_body.spec.template.spec.template.spec.nodeSelector' })

  const configMap = v1Job()
  configMap.spec.template.spec.template.spec.containers[0].env.push({ name: 'X', valueFrom: { configMapKeyRef: { name: 'c', key: 'k' } } })
  t.throws(() => convertV1JobToV2(configMap), { name: 'TemplateError', field: /env\[2\]\.valueFrom\.configMapKeyRef$/ })

  const noVersion = v1Job()
  noVersion.spec.template.spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef = { name: 'prefect-api-key' }
  t.throws(() => convertV1JobToV2(noVersion), { constructor: TemplateError, message: /needs a secret name and a key/ })

  const badTimeout = v1Job()
  badTimeout.spec.template.spec.template.spec.timeoutSeconds = '10m'
  t.throws(() => convertV1JobToV2(badTimeout), { name: 'TemplateError', field: /timeoutSeconds$/ })

  const badEgress = v1Job()
  badEgress.spec.template.metadata.annotations['run.googleapis.com/vpc-access-egress'] = 'sometimes'
  t.throws(() => convertV1JobToV2(badEgress), { constructor: TemplateError, message: /all-traffic, private-ranges-only/ })
})
