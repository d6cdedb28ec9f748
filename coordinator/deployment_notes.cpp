// Notes on a deployment (lessons learned): appended in any state, final ones included, as a
// change of the deployment like any other, so that a note is durable with its event and never
// races the engine's own commits of a live deployment.
#include <string>

#include "common/rules.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/deployment_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using deployment_internal::byActor;
using deployment_internal::emit;

Status addNote(Deployment& d, const std::string& text, const Actor& by, const Context& ctx,
               Effects& fx) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument("a note needs some text");
  }
  Status valid = common::checkFreeText(text, "the note", common::kMaxNoteBytes);
  if (!valid.ok()) return valid;
  if (d.notes.size() >= kMaxNotes) {
    return Status::FailedPrecondition("deployment " + d.id + " already has " +
                                      std::to_string(kMaxNotes) + " notes, the most it keeps");
  }
  d.notes.push_back(DeploymentNote{text, by.name, common::toUnixMillis(ctx.now)});
  // The event names the note by its first line; the whole text is in the deployment.
  emit(fx, "deployment.note", "", "", "", byActor(by, text.substr(0, text.find('\n'))));
  return Status::Ok();
}

}  // namespace flotilla::coordinator
