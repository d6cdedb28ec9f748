# Records the coordinator keeps in RocksDB that are written by the thousand per turn of its
# loop (coordinator/store.hpp has the key layout): one per cluster of a deployment, one per
# event. Cap'n Proto rather than JSON because building and freeing a JSON tree per record was
# a third of the coordinator's engine thread during a 10,000-cluster fan-out (profiled: ~5 us a
# record). Values that start with '{' are the JSON records older coordinators wrote, and
# still load. Enums are stored as the coordinator's own numbering (coordinator/deployment.hpp);
# a value out of range does not load.

@0x9b95568b38270186;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("flotilla::schema");

struct ClusterRecord {
  name @0 :Text;
  state @1 :UInt8;            # ClusterState
  step @2 :Int8 = -1;         # StepKind, -1 = none sent yet
  stepIndex @3 :Int32 = -1;
  attempt @4 :UInt32;
  inFlight @5 :Bool;
  abortSent @6 :Bool;
  agentLost @7 :Bool;
  rollbackLost @8 :Bool;
  applied @9 :Bool;
  previousVersion @10 :Text;
  message @11 :Text;
  hasExitCode @12 :Bool;
  exitCode @13 :Int32;
  promotedBy @14 :Text;       # `flotilla promote`: who, "" = not promoted
  held @15 :Bool;             # its failed step is held (plan on_step_failure: hold)
  figures @16 :Text;        # the last analysis figures, common/analysis_figures' JSON; "" none
  figuresStage @17 :Text;   # "<stage id>#<attempt>" they came from
  check @18 :Text;          # the checklist check of the verify step in flight or last sent
  checks @19 :List(CheckRunRecord);  # the checklist's runs (coordinator CheckRun)
}

struct CheckRunRecord {
  name @0 :Text;
  running @1 :Bool;
  outcome @2 :UInt8;        # Outcome, once it ended
  durationMs @3 :UInt64;
  exitCode @4 :Int32;
  message @5 :Text;
}

struct EventRecord {
  seq @0 :UInt64;
  timeMs @1 :Int64;
  type @2 :Text;
  wave @3 :Text;
  cluster @4 :Text;
  step @5 :Text;
  message @6 :Text;
  data @7 :Text;            # a JSON object for programs ("" none): Event::data
}
