// Generated from openapi.yaml (components.schemas) by `npm run openapi-schemas`: do not edit, edit
// openapi.yaml and run it. test/contract/openapi.test.ts fails when the two differ.
export const componentSchemaSources: Record<string, Record<string, unknown>> = {
  "Error": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "code",
      "message"
    ],
    "properties": {
      "code": {
        "type": "string",
        "enum": [
          "WEBHOOK_UNAUTHORIZED",
          "WEBHOOK_UNSUPPORTED_MEDIA_TYPE",
          "WEBHOOK_BODY_TOO_LARGE",
          "WEBHOOK_INVALID_JSON",
          "WEBHOOK_INVALID_PAYLOAD",
          "WEBHOOK_FOREIGN_RESOURCE",
          "ADMIN_UNAUTHORIZED",
          "ADMIN_FORBIDDEN",
          "ADMIN_AUTH_UNAVAILABLE",
          "DISPATCH_NOT_FOUND",
          "DISPATCH_NOT_CANCELLABLE",
          "DISPATCH_NOT_REDRIVABLE",
          "DISPATCH_BUSY",
          "PUSH_INVALID_MESSAGE",
          "INVALID_QUERY",
          "INVALID_CURSOR",
          "ROUTE_NOT_FOUND",
          "METHOD_NOT_ALLOWED",
          "BAD_REQUEST",
          "REQUEST_TIMEOUT",
          "HEADERS_TOO_LARGE",
          "PREFECT_UNAVAILABLE",
          "STORE_UNAVAILABLE",
          "PREFECT_UNAUTHORIZED",
          "OVERLOADED",
          "NOT_READY",
          "INTERNAL"
        ]
      },
      "message": {
        "type": "string"
      }
    }
  },
  "WebhookPayload": {
    "type": "object",
    "description": "Rendered by the automation's payload template; only resource_id is used",
    "required": [
      "resource_id"
    ],
    "properties": {
      "event_id": {
        "type": "string"
      },
      "event": {
        "type": "string"
      },
      "occurred": {
        "type": "string"
      },
      "resource_id": {
        "type": "string",
        "pattern": "^prefect\\.flow-run\\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
      }
    }
  },
  "WebhookAccepted": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "status",
      "dispatch_id",
      "state"
    ],
    "properties": {
      "status": {
        "type": "string",
        "enum": [
          "accepted"
        ]
      },
      "dispatch_id": {
        "type": "string"
      },
      "state": {
        "$ref": "#/components/schemas/DispatchState"
      }
    }
  },
  "WebhookNoop": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "status",
      "reason"
    ],
    "properties": {
      "status": {
        "type": "string",
        "enum": [
          "ignored",
          "duplicate"
        ]
      },
      "reason": {
        "type": "string"
      },
      "dispatch_id": {
        "type": "string"
      },
      "state": {
        "$ref": "#/components/schemas/DispatchState"
      }
    }
  },
  "DispatchState": {
    "type": "string",
    "enum": [
      "received",
      "deferred",
      "skipped",
      "claimed",
      "launching",
      "launched",
      "succeeded",
      "failed",
      "crashed",
      "cancelled",
      "retrying",
      "submit_failed"
    ]
  },
  "Dispatch": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "id",
      "key",
      "flow_run_id",
      "pool",
      "state",
      "attempts",
      "received_at",
      "created_at",
      "updated_at"
    ],
    "properties": {
      "id": {
        "type": "string"
      },
      "key": {
        "type": "string",
        "description": "<flow_run_id>:<state_id> of the Scheduled-type state that was dispatched"
      },
      "flow_run_id": {
        "type": "string"
      },
      "flow_run_name": {
        "type": [
          "string",
          "null"
        ]
      },
      "pool": {
        "type": "string"
      },
      "deployment_id": {
        "type": [
          "string",
          "null"
        ]
      },
      "deployment_name": {
        "type": [
          "string",
          "null"
        ],
        "description": "known once the launch has read the deployment"
      },
      "flow_name": {
        "type": [
          "string",
          "null"
        ],
        "description": "known once the launch has read the flow"
      },
      "scheduled_at": {
        "type": [
          "string",
          "null"
        ],
        "description": "when the dispatched Scheduled-type state was due; launch latency counts from it"
      },
      "state": {
        "$ref": "#/components/schemas/DispatchState"
      },
      "attempts": {
        "type": "integer"
      },
      "due_at": {
        "type": [
          "string",
          "null"
        ]
      },
      "project": {
        "type": [
          "string",
          "null"
        ]
      },
      "region": {
        "type": [
          "string",
          "null"
        ]
      },
      "job_name": {
        "type": [
          "string",
          "null"
        ]
      },
      "execution_name": {
        "type": [
          "string",
          "null"
        ]
      },
      "log_uri": {
        "type": [
          "string",
          "null"
        ]
      },
      "error": {
        "type": [
          "string",
          "null"
        ]
      },
      "lease": {
        "description": "Who drives the dispatch now and until when (an instance of pushpool); null when nobody does",
        "anyOf": [
          {
            "type": "null"
          },
          {
            "type": "object",
            "additionalProperties": false,
            "required": [
              "owner",
              "expires_at"
            ],
            "properties": {
              "owner": {
                "type": "string"
              },
              "expires_at": {
                "type": "string"
              }
            }
          }
        ]
      },
      "cancel_requested_at": {
        "type": [
          "string",
          "null"
        ],
        "description": "when cancellation of the run was first requested"
      },
      "received_at": {
        "type": "string"
      },
      "launched_at": {
        "type": [
          "string",
          "null"
        ]
      },
      "created_at": {
        "type": "string"
      },
      "updated_at": {
        "type": "string"
      }
    }
  },
  "DispatchPage": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "items",
      "next_cursor"
    ],
    "properties": {
      "items": {
        "type": "array",
        "items": {
          "$ref": "#/components/schemas/Dispatch"
        }
      },
      "next_cursor": {
        "type": [
          "string",
          "null"
        ]
      }
    }
  },
  "DispatchEvent": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "seq",
      "at",
      "type",
      "detail"
    ],
    "properties": {
      "seq": {
        "type": "integer"
      },
      "at": {
        "type": "string"
      },
      "type": {
        "type": "string"
      },
      "from": {
        "anyOf": [
          {
            "$ref": "#/components/schemas/DispatchState"
          },
          {
            "type": "null"
          }
        ]
      },
      "to": {
        "anyOf": [
          {
            "$ref": "#/components/schemas/DispatchState"
          },
          {
            "type": "null"
          }
        ]
      },
      "detail": {
        "type": "string"
      },
      "reply": {
        "description": "What Prefect or GCP answered (redacted)"
      }
    }
  },
  "DispatchDetail": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "dispatch",
      "events",
      "job_spec",
      "links"
    ],
    "properties": {
      "dispatch": {
        "$ref": "#/components/schemas/Dispatch"
      },
      "events": {
        "type": "array",
        "items": {
          "$ref": "#/components/schemas/DispatchEvent"
        }
      },
      "job_spec": {
        "description": "The rendered Cloud Run job, with env values redacted unless known to be harmless"
      },
      "links": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "cloud_run_console": {
            "type": [
              "string",
              "null"
            ]
          },
          "logs": {
            "type": [
              "string",
              "null"
            ]
          },
          "prefect_ui": {
            "type": [
              "string",
              "null"
            ]
          }
        }
      }
    }
  },
  "DispatchEnvelope": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "dispatch"
    ],
    "properties": {
      "dispatch": {
        "$ref": "#/components/schemas/Dispatch"
      }
    }
  },
  "ReconcileReport": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "checked",
      "finished",
      "crashed",
      "cancelled",
      "reaped",
      "armed",
      "driven",
      "discovered",
      "heartbeats",
      "jobs_deleted",
      "pruned",
      "errors",
      "failures",
      "duration_ms",
      "truncated"
    ],
    "properties": {
      "checked": {
        "type": "integer",
        "description": "launched dispatches whose execution was read"
      },
      "finished": {
        "type": "integer"
      },
      "crashed": {
        "type": "integer",
        "description": "flow runs marked Crashed because their execution failed"
      },
      "cancelled": {
        "type": "integer"
      },
      "reaped": {
        "type": "integer",
        "description": "executions cancelled because their flow run had ended without completing"
      },
      "armed": {
        "type": "integer",
        "description": "timers armed: for runs due within the horizon, and again for dispatches waiting for a time"
      },
      "driven": {
        "type": "integer",
        "description": "deferred, retrying or stuck dispatches that moved on (launched, skipped, failed)"
      },
      "discovered": {
        "type": "integer",
        "description": "due runs found without a webhook and dispatched"
      },
      "heartbeats": {
        "type": "integer"
      },
      "jobs_deleted": {
        "type": "integer"
      },
      "pruned": {
        "type": "integer"
      },
      "errors": {
        "type": "integer",
        "description": "steps that failed in this pass; the next pass retries each"
      },
      "failures": {
        "type": "array",
        "maxItems": 20,
        "description": "The first failures behind `errors`, each with the step it happened in, what it was about and\nwhy (the error's message, which never holds a credential), e.g. a heartbeat when Prefect is\nunreachable.\n",
        "items": {
          "type": "object",
          "additionalProperties": false,
          "required": [
            "step",
            "message"
          ],
          "properties": {
            "step": {
              "type": "string",
              "enum": [
                "drive",
                "check",
                "discover",
                "arm",
                "heartbeat",
                "prune"
              ]
            },
            "pool": {
              "type": [
                "string",
                "null"
              ]
            },
            "dispatch_id": {
              "type": [
                "string",
                "null"
              ]
            },
            "flow_run_id": {
              "type": [
                "string",
                "null"
              ]
            },
            "message": {
              "type": "string"
            }
          }
        }
      },
      "duration_ms": {
        "type": "integer"
      },
      "truncated": {
        "type": "boolean"
      }
    }
  },
  "ExecutionEndHandled": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "status",
      "reason",
      "dispatch_id",
      "state"
    ],
    "properties": {
      "status": {
        "type": "string",
        "enum": [
          "closed",
          "running",
          "ignored"
        ],
        "description": "closed: the dispatch was closed (the run Crashed if it had not ended); running: Cloud Run still shows it running; ignored: no launched dispatch to check, or not a job execution entry"
      },
      "reason": {
        "type": "string"
      },
      "dispatch_id": {
        "type": [
          "string",
          "null"
        ]
      },
      "state": {
        "anyOf": [
          {
            "type": "null"
          },
          {
            "$ref": "#/components/schemas/DispatchState"
          }
        ]
      }
    }
  },
  "TimerFiring": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "dispatch_id"
    ],
    "properties": {
      "dispatch_id": {
        "type": "string",
        "format": "uuid"
      }
    }
  },
  "TimerFired": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "status",
      "dispatch_id",
      "state"
    ],
    "properties": {
      "status": {
        "type": "string",
        "enum": [
          "driven",
          "moved-on",
          "busy",
          "saturated",
          "gone"
        ],
        "description": "driven: the dispatch was driven now; moved-on: it no longer waits, or waits for a later time whose own timer is armed; busy: another drive owns it; saturated: this instance has as many drives in flight as it may, and drives it when one ends; gone: no such dispatch"
      },
      "dispatch_id": {
        "type": "string"
      },
      "state": {
        "anyOf": [
          {
            "type": "null"
          },
          {
            "$ref": "#/components/schemas/DispatchState"
          }
        ]
      }
    }
  },
  "PoolList": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "pools"
    ],
    "properties": {
      "pools": {
        "type": "array",
        "items": {
          "type": "object",
          "additionalProperties": false,
          "required": [
            "name",
            "counts",
            "last_dispatch_at",
            "launch_latency_ms"
          ],
          "properties": {
            "name": {
              "type": "string"
            },
            "counts": {
              "type": "object",
              "additionalProperties": {
                "type": "integer"
              }
            },
            "last_dispatch_at": {
              "type": [
                "string",
                "null"
              ]
            },
            "launch_latency_ms": {
              "description": "Launch latency of the pool's most recent launches (at most 100): from a run's scheduled\nstart (the scheduled time of the Scheduled-type state dispatched; for a run started at\nonce, about its creation) to Cloud Run accepting its execution (launched_at). It includes\nPrefect's event and webhook delivery, and is negative when pushpool started a container\nahead of a due time, within PUSHPOOL_PREFETCH_SECONDS. /metrics'\npushpool_dispatch_latency_seconds and the demo's \"to launch\" use the same definition.\n",
              "anyOf": [
                {
                  "type": "null"
                },
                {
                  "type": "object",
                  "additionalProperties": false,
                  "required": [
                    "median",
                    "p90",
                    "samples"
                  ],
                  "properties": {
                    "median": {
                      "type": "integer"
                    },
                    "p90": {
                      "type": "integer"
                    },
                    "samples": {
                      "type": "integer"
                    }
                  }
                }
              ]
            }
          }
        }
      }
    }
  },
  "Health": {
    "type": "object",
    "additionalProperties": false,
    "required": [
      "status"
    ],
    "properties": {
      "status": {
        "type": "string",
        "enum": [
          "ok"
        ]
      }
    }
  }
}
