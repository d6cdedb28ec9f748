# Wire protocol between flotilla-coordinator (ZeroMQ ROUTER) and
# flotilla-agent (ZeroMQ DEALER). One frame = one Envelope.
#
# Every command carries deployment id, stage id, attempt and the sender's
# epoch so an agent can drop duplicates (same deployment/stage/attempt) and
# stale commands (epoch older than the newest it has seen).
@0xea807ec6ce735cb6;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("flotilla::schema");

struct Label {
  key @0 :Text;
  value @1 :Text;
}

# Identifies one run of one step on one cluster.
struct StageRef {
  deploymentId @0 :Text;
  stageId @1 :Text;      # "<cluster>/<step>", unique inside a deployment
  attempt @2 :UInt32;
  nonce @3 :Text;        # the coordinator's HMAC of the three above (unguessable without its
                         # secret); every frame about the stage echoes the command's nonce
}

enum Step {
  build @0;     # script driver
  apply @1;     # script driver
  verify @2;    # script driver
  rollback @3;  # both drivers: take the new version out of this cluster
  deploy @4;    # process driver: start the new replicas, healthy, without traffic
  shift @5;     # move `weight` percent of traffic to them (script driver: run `command`)
  analyze @6;   # compare new against stable for `durationMs` (script driver: see `watch`)
  bake @7;      # watch health at 100% for `durationMs` (script driver: see `watch`)
  finalize @8;  # process driver: retire the previous replicas
  roll @9;      # process driver: replace replicas a few at a time (rolling strategy)
  watch @10;    # both drivers: one tier of the post-deploy watch, after the last wave: health
                # checks (and the analysis, the alerts) every health.intervalMs (the tier's
                # interval) for durationMs; the script driver also runs `command` (the plan's
                # steps.watch) at each interval
}

enum Outcome {
  succeeded @0;
  failed @1;      # the step ran and exited non-zero
  timedOut @2;    # killed after the step's timeout
  aborted @3;     # killed on the coordinator's request
  unknown @4;     # the agent crashed while it ran; its effect is not known
  refused @5;     # never started (stale epoch, bad command, spawn failure)
}

# What an agent holds for a stage: finished ones carry their result.
struct HeldStage {
  ref @0 :StageRef;
  running @1 :Bool;
  outcome @2 :Outcome;
  exitCode @3 :Int32;
  message @4 :Text;
  durationMs @5 :UInt64;  # finished ones: how long the stage ran
  artifact @6 :Text;  # as StageResult.artifact
}

# agent -> coordinator, on start and whenever asked to re-register.
struct Register {
  cluster @0 :Text;
  labels @1 :List(Label);
  agentVersion @2 :Text;
  held @3 :List(HeldStage);
  lastEpoch @4 :UInt64;  # newest coordinator epoch this agent has accepted
  enrollToken @5 :Text;  # one-time token (`flotilla agents enroll`) binding this agent's
                         # CURVE key to `cluster`; sent until the first registration succeeds
}

# coordinator -> agent: a register was not accepted, and why (the agent logs it and retries
# later; e.g. its key is enrolled for another cluster, or its enrollment token expired).
struct Refused {
  reason @0 :Text;
  retryable @1 :Bool;  # true: the same register may succeed later (the cluster's previous
                       # connection is still open); false: it needs an operator
}

# coordinator -> agent, answer to Register.
struct Registered {
  epoch @0 :UInt64;
  heartbeatIntervalMs @1 :UInt32;
}

# coordinator -> agent: "I do not know you (any more), register again".
struct Reregister {
  epoch @0 :UInt64;
}

# agent -> coordinator, every heartbeat interval.
struct Heartbeat {
  cluster @0 :Text;
  epoch @1 :UInt64;       # the epoch the agent registered under
  runningStages @2 :UInt32;
}

# coordinator -> agent: run one step.
struct StageCommand {
  ref @0 :StageRef;
  epoch @1 :UInt64;
  step @2 :Step;
  command @3 :Text;       # script driver: run with /bin/sh -c
  timeoutMs @4 :UInt64;
  env @5 :List(Label);    # FLOTILLA_* variables chosen by the coordinator (both drivers: the
                          # process driver gives them to the replicas it starts)
  unusedSpecJson @6 :Text;  # never set: the process spec travelled here as JSON before `process`
  process @7 :ProcessSpec;  # process driver: the service and this step's parameters
  watch @8 :ProcessSpec;    # script driver, analyze and bake: what to watch (health.url,
                            # metrics from Prometheus, alerts, durationMs); `process` and
                            # `traffic` absent. The agent's script driver runs these steps.
}

# The process driver's service spec and one step's parameters: built by the coordinator from
# the plan (coordinator/process_spec.cpp), checked and read by the agent (agent/process/spec.cpp).
# Not sent, on purpose: the script steps, waves, approvals and rollback scope (the
# coordinator's), the alerts' webhook, timeout and attempts (the coordinator posts alerts), and
# canary / blue-green steps and pauses (each arrives as its own shift / analyze step).
struct ProcessSpec {
  service @0 :Text;
  version @1 :Text;          # the version this deployment brings
  previousVersion @2 :Text;  # what the cluster ran before it ("" = nothing known)
  cluster @3 :Text;
  deployment @4 :Text;       # the deployment id (FLOTILLA_DEPLOYMENT of the replicas)
  process @5 :Process;       # the plan's `process`: required by deploy and roll
  traffic @6 :Traffic;       # the plan's `traffic`; absent: no load balancer
  health @7 :Health;         # the plan's `health.http`
  metrics @8 :Metrics;       # the plan's `health.metrics`; absent: no analysis
  alerts @9 :Alerts;         # the plan's `alerts` thresholds; absent: none
  rolling @10 :Rolling;      # the wave's strategy when it is `rolling`; absent otherwise
  weight @11 :UInt32;        # shift: percent of traffic for the new set (0..100)
  durationMs @12 :UInt64;    # analyze / bake: how long to watch

  struct Process {
    command @0 :Text;        # with {version}, {port} and {cluster} placeholders
    replicas @1 :UInt32;
    portMin @2 :UInt32;
    portMax @3 :UInt32;
    healthPath @4 :Text;     # readiness after a start
  }
  struct Traffic {
    haproxySocket @0 :Text;   # runtime API socket; may hold {cluster}
    haproxyBackend @1 :Text;
  }
  struct Health {
    path @0 :Text;
    intervalMs @1 :UInt64;
    timeoutMs @2 :UInt64;
    failureThreshold @3 :UInt32;  # this many failures in a row are tolerated; one more fails
    url @4 :Text;                 # script driver: the address probed, with {cluster},
                                  # {version}, {environment} for the agent to fill in
  }
  struct Metrics {
    errorRateIncrease @0 :Float64;  # relative to the stable set
    latencyP95Ratio @1 :Float64;
    minRequests @2 :UInt64;         # per set and window; fewer is inconclusive
    failWhenInconclusive @3 :Bool;  # false: keep watching (up to 3 more windows)
    prometheus @4 :Prometheus;      # absent: scrape the replicas' /metrics
  }
  struct Prometheus {
    url @0 :Text;
    requestRate @1 :Text;  # PromQL with {instances}, {window}, {version}, {cluster}
                           # (agent/prometheus.hpp)
    errorRate @2 :Text;
    latencyP95 @3 :Text;
  }
  struct Alerts {
    errorRate @0 :Float64;
    latencyP95Ratio @1 :Float64;
    cpu @2 :Float64;
    memory @3 :Float64;
    # A rule the plan turned off (`cpu: off`); its threshold above is then not read.
    errorRateOff @4 :Bool;
    latencyP95RatioOff @5 :Bool;
    cpuOff @6 :Bool;
    memoryOff @7 :Bool;
  }
  struct Rolling {
    maxUnavailable @0 :UInt32;
    maxSurge @1 :UInt32;
  }
}

# agent -> coordinator: output lines of a running step (bounded, batched).
struct StageProgress {
  ref @0 :StageRef;
  lines @1 :List(Text);
  droppedLines @2 :UInt32;  # lines over the per-stage limit, not sent
}

# agent -> coordinator: how a step ended.
struct StageResult {
  ref @0 :StageRef;
  epoch @1 :UInt64;       # epoch of the command this answers
  outcome @2 :Outcome;
  exitCode @3 :Int32;
  message @4 :Text;       # short human reason (last output line, signal, ...)
  durationMs @5 :UInt64;
  artifact @6 :Text;      # a succeeded build's artifact digest ("sha256:" + 64 lower-case hex;
                          # "" none): from `flotilla-artifact: sha256:...` on its output or the
                          # file at $FLOTILLA_ARTIFACT_FILE. The coordinator checks it again.
}

# coordinator -> agent: stop a running step now.
struct Abort {
  ref @0 :StageRef;
  epoch @1 :UInt64;
  reason @2 :Text;
}

# A watched threshold crossed while a step ran (the plan's `alerts`): the coordinator records
# it as an event and posts it to the plan's webhook. Not a rollback trigger by itself.
struct Alert {
  ref @0 :StageRef;
  epoch @1 :UInt64;
  rule @2 :Text;          # "error_rate", "latency_p95", "cpu", "memory"
  value @3 :Float64;      # what was measured
  threshold @4 :Float64;  # what it was compared against
  baseline @5 :Float64;   # the stable version's value, 0 when the rule has none
  version @6 :Text;       # the version whose replicas were measured
  message @7 :Text;       # for people, with the figures
}

# agent -> coordinator: one analysis window (analyze) or bake slice, whether it passed or not,
# so that the on-call (`status`, `watch`) and the dashboard's charts see the figures behind each
# verdict. At most one per window; every number is finite and not negative (the coordinator
# drops the frame otherwise). Not a trigger: the step's result says how it ended.
struct Figures {
  ref @0 :StageRef;
  epoch @1 :UInt64;           # the epoch of the command this step runs under
  window @2 :UInt32;          # 1-based number of the window (slice) within the step
  windowMs @3 :UInt64;        # how long the window was
  bake @4 :Bool;              # false: an analyze step's window; true: a bake slice
  candidate @5 :SetFigures;   # the new version's replicas
  stable @6 :SetFigures;      # the old (stable) set's; absent when there is none to compare with
  # The thresholds in force, as the analysis rules compute them from the stable set's figures.
  hasErrorRateLimit @7 :Bool;  # false: no limit applied (no analysis, or too few requests)
  errorRateLimit @8 :Float64;  # share (0.01 = 1%): max(stable * (1 + increase), the floor)
  hasLatencyP95Limit @9 :Bool; # false: not known (no latency data on the stable set)
  latencyP95Limit @10 :Float64;  # seconds: stable p95 * the plan's ratio
  minRequests @11 :UInt64;       # per set and window; fewer makes the window inconclusive
  verdict @12 :WindowVerdict;
  # The health checks of the new set during this step.
  healthChecks @13 :UInt32;      # checks so far in the step
  healthFailing @14 :UInt32;     # consecutive failures now (the worst replica's)
  healthThreshold @15 :UInt32;   # failures in a row tolerated; one more fails the step

  struct SetFigures {
    version @0 :Text;
    requests @1 :UInt64;        # completed in the window, all codes
    requestRate @2 :Float64;    # requests per second
    errorRate @3 :Float64;      # 5xx share of the requests (0..1)
    hasLatencyP95 @4 :Bool;     # false: the latency histogram saw nothing
    latencyP95 @5 :Float64;     # seconds
    replicas @6 :UInt32;        # replicas measured
  }
}

enum WindowVerdict {
  none @0;          # a bake slice without analysis (health and alerts only)
  pass @1;
  fail @2;
  inconclusive @3;  # too few requests or no latency data: never a pass
}

struct Envelope {
  union {
    register @0 :Register;
    registered @1 :Registered;
    reregister @2 :Reregister;
    heartbeat @3 :Heartbeat;
    stageCommand @4 :StageCommand;
    stageProgress @5 :StageProgress;
    stageResult @6 :StageResult;
    abort @7 :Abort;
    alert @8 :Alert;
    refused @9 :Refused;
    figures @10 :Figures;
  }
}
