// SPDX-License-Identifier: MIT
// xthrottle status [--json] [--check]
#include <memory>

#include "cli.h"
#include "status.h"

namespace xt::cli {
namespace {

struct StatusOptions {
  bool json = false, check = false;
};

int run_status(const Globals& g, const StatusOptions& o) {
  auto status = read_status(g.pin_dir);
  if (!status) return fail(status.error());
  emit(o.json, status_json(*status), status_text(*status));
  if (!o.check) return 0;
  if (!status->warnings.empty()) return kExitNotProtected;
  return status->config_warnings.empty() ? 0 : kExitConfigDrift;
}

}  // namespace

void add_status_command(CLI::App& app, const Globals& g, int& rc) {
  auto o = std::make_shared<StatusOptions>();
  auto* status = app.add_subcommand("status", "Where it runs and whether it protects");
  status->add_flag("--json", o->json, "JSON output");
  status->add_flag("--check", o->check,
                   "Exit 3 if anything leaves the host unprotected, 4 if the rules drifted from the rules file");
  status->callback([&g, &rc, o] { rc = run_status(g, *o); });
}

}  // namespace xt::cli
