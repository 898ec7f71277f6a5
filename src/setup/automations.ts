// The two automations that make Prefect push to pushpool: one per flow-run state that needs it.
// Both react to the state-change events Prefect emits for flow runs of the pool, and call the
// Webhook block with the payload template of docs/architecture.md ("The webhook"). An automation
// is ours by its name, so a second run finds and updates it instead of adding another.
import { changedPaths } from './json-diff.ts'
import type { Automation, AutomationBody, SetupPrefectApi } from './prefect-api.ts'
import type { Step } from './step.ts'

export const PAYLOAD_TEMPLATE =
  '{"event_id":"{{ event.id }}","event":"{{ event.event }}","occurred":"{{ event.occurred }}","resource_id":"{{ event.resource.id }}"}'

const MANAGED = 'Managed by `pushpool setup`: edits are overwritten when it runs again.'

export function automationNames (pool: string): { dispatch: string, cancel: string } {
  return { dispatch: `${pool}: dispatch`, cancel: `${pool}: cancel` }
}

export function desiredAutomations (pool: string, webhookBlockId: string): AutomationBody[] {
  const names = automationNames(pool)
  return [
    automation(names.dispatch, webhookBlockId, flowRunStateTrigger(pool, 'SCHEDULED'),
      // Matching the state type, not the name, covers every Scheduled-type state: Scheduled,
      // Late (how scheduler-created runs surface), AwaitingRetry, Resuming.
      `Launches flow runs of work pool "${pool}" on Cloud Run through pushpool when they become Scheduled, Late or AwaitingRetry. ${MANAGED}`),
    automation(names.cancel, webhookBlockId, flowRunStateTrigger(pool, 'CANCELLING'),
      `Tells pushpool to cancel the Cloud Run execution of a flow run of work pool "${pool}" when the run is Cancelling. ${MANAGED}`)
  ]
}

/** Steps for both automations; a name found more than once also yields steps deleting the extra copies. */
export async function planAutomations (api: SetupPrefectApi, pool: string, webhookBlockId: string): Promise<Step[]> {
  const steps: Step[] = []
  for (const desired of desiredAutomations(pool, webhookBlockId)) {
    const [kept, ...extra] = await api.automationsNamed(desired.name)
    steps.push(kept === undefined ? createStep(api, desired) : updateStep(api, kept, desired))
    // Two copies would call the webhook twice per event (e.g. after two setups ran at once).
    for (const copy of extra) {
      steps.push({
        kind: 'automation',
        name: desired.name,
        outcome: 'delete',
        changed: [],
        note: `duplicate ${copy.id}`,
        shown: { id: copy.id },
        apply: () => api.deleteAutomation(copy.id)
      })
    }
  }
  return steps
}

function createStep (api: SetupPrefectApi, desired: AutomationBody): Step {
  return {
    kind: 'automation',
    name: desired.name,
    outcome: 'create',
    changed: [],
    shown: desired,
    apply: async () => { await api.createAutomation(desired) }
  }
}

function updateStep (api: SetupPrefectApi, existing: Automation, desired: AutomationBody): Step {
  const changed = changedPaths(comparable(existing), comparable(desired))
  return {
    kind: 'automation',
    name: desired.name,
    outcome: changed.length > 0 ? 'update' : 'unchanged',
    changed,
    shown: desired,
    apply: async () => { if (changed.length > 0) await api.replaceAutomation(existing.id, desired) }
  }
}

// A reactive trigger with `within: 0` fires once for every matching event. `for_each` keeps one
// bucket per flow run, as the Prefect UI does for state triggers, so runs do not share a counter.
function flowRunStateTrigger (pool: string, stateType: 'SCHEDULED' | 'CANCELLING'): Record<string, unknown> {
  return {
    type: 'event',
    posture: 'Reactive',
    threshold: 1,
    within: 0,
    after: [],
    expect: ['prefect.flow-run.*'],
    for_each: ['prefect.resource.id'],
    match: { 'prefect.resource.id': 'prefect.flow-run.*', 'prefect.state-type': stateType },
    match_related: { 'prefect.resource.role': 'work-pool', 'prefect.resource.name': pool }
  }
}

function automation (name: string, webhookBlockId: string, trigger: Record<string, unknown>, description: string): AutomationBody {
  return {
    name,
    description,
    enabled: true,
    tags: ['pushpool'],
    trigger,
    actions: [{ type: 'call-webhook', block_document_id: webhookBlockId, payload: PAYLOAD_TEMPLATE }],
    actions_on_trigger: [],
    actions_on_resolve: []
  }
}

/**
 * The fields setup writes, in a form where equal automations compare equal: the server adds a
 * trigger id, answers `within` in seconds as a float, and keeps set-valued fields in any order.
 */
function comparable (a: AutomationBody): AutomationBody {
  const trigger: Record<string, unknown> = { ...a.trigger, within: Number(a.trigger.within) }
  delete trigger.id
  for (const set of ['after', 'expect', 'for_each']) trigger[set] = [...(trigger[set] as string[])].sort()
  return {
    name: a.name,
    description: a.description,
    enabled: a.enabled,
    tags: [...a.tags].sort(),
    trigger,
    actions: a.actions,
    actions_on_trigger: a.actions_on_trigger,
    actions_on_resolve: a.actions_on_resolve
  }
}
