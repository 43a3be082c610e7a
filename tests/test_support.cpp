// Test plumbing shared by all suites.
#include "test_support.h"

#include "halo/file_system.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace halo::test {

std::string shared_dir() {
  const char* env = std::getenv("HALO_SHARED");
  return env != nullptr ? env : HALO_SHARED_DIR;
}

c10::Device device() {
  const char* env = std::getenv("HALO_TEST_DEVICE");
  return c10::Device(env != nullptr ? env : "cpu");
}

std::string fixture(const std::string& name) { return shared_dir() + "/fixtures/" + name; }

namespace {
std::vector<std::string>& temp_dirs() {
  static std::vector<std::string> dirs;
  static bool registered = [] {
    std::atexit([] {
      for (const auto& d : temp_dirs()) remove_tree(d);
    });
    return true;
  }();
  (void)registered;
  return dirs;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/halo-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  temp_dirs().push_back(pattern);
  return pattern;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

CommandResult run_halo(const std::string& args) {
  const std::string dir = make_temp_dir();
  const std::string cmd = std::string(HALO_CLI_PATH) + " " + args + " >" + dir + "/out 2>" + dir + "/err";
  int status = std::system(cmd.c_str());
  CommandResult r;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  } else {
    r.exit_code = -1;
  }
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  return r;
}

}  // namespace halo::test
