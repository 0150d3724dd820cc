// Running a Python reference script and reading its one-line JSON answer, the same way for every benchmark.
#include "bench/python_reference.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/process.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;

std::string last_lines(const fs::path& log, size_t n) {
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += "\n  " + lines[i];
  return out;
}

}  // namespace

ReferenceRun run_reference(const std::string& python_exe, const std::string& script,
                           const std::vector<std::string>& args, const fs::path& log, const ReferenceStream& stream) {
  const std::string python = reference_python(python_exe);
  const fs::path path = python_reference(script);
  PETSEG_CHECK(fs::exists(path), "the Python reference ", path.string(), " does not exist");
  const bool temporary = log.empty();
  const fs::path log_file =
      temporary ? fs::temp_directory_path() / ("petseg-" + script + "-" + std::to_string(::getpid()) + ".log") : log;
  // Standard error goes to the log through the shell's redirection (argv[0] and the rest passed as "$@").
  std::vector<std::string> argv = {"sh", "-c", "log=$1; shift; exec \"$@\" 2>>\"$log\"", "sh", log_file.string(),
                                   python, path.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions options;
  options.timeout_s = stream.timeout_s;
  if (stream.on_result) {
    options.on_line = [&](const std::string& line) {
      if (line.empty() || line.front() != '{') return;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception&) {
        return;  // not a result line: left to the last-line check below
      }
      if (j.is_object()) stream.on_result(j);
    };
  }
  const ProcessResult r = run_process(argv, options);
  const std::string tail = last_lines(log_file, 12);
  if (temporary) fs::remove(log_file);
  ReferenceRun run;
  if (r.timed_out) {
    run.timed_out = true;
    return run;
  }
  if (r.exit_code == 3) {  // the script says which module is missing on its last line of standard error
    const std::string why = tail.empty() ? "a module it needs is missing" : tail.substr(tail.find_last_of('\n') + 3);
    run.skipped = "Python reference skipped: " + python + " cannot run " + script + " (" + why +
                  "; scripts/setup.sh installs what the references need)";
    return run;
  }
  PETSEG_CHECK(r.exit_code == 0, "the Python reference ", script, " exited with ", r.exit_code,
               temporary ? std::string() : "; log " + log_file.string(), ":", tail);
  const std::string out = r.out.substr(0, r.out.find_last_not_of("\n ") + 1);
  const std::string line = out.substr(out.find_last_of('\n') + 1);
  try {
    run.result = nlohmann::json::parse(line);
    PETSEG_CHECK(run.result->is_object(), "not a JSON object");
  } catch (const std::exception& e) {
    PETSEG_FAIL("the Python reference ", script, " printed no JSON result on its last line (", e.what(),
                "); it printed: ", line.substr(0, 200));
  }
  return run;
}

}  // namespace petseg::bench
