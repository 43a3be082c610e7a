// The source layout's written rules (docs/ARCHITECTURE.md), checked on the tree itself:
// - src/ holds folders only, in dependency order; a file includes headers of its own folder or
//   of folders before it, never after (a public header counts as its implementation's folder);
// - include/halo/X.h is implemented in src/<folder>/X.cpp or X_<part>.cpp;
// - src/cli includes only public headers (halo/*.h) and its own (cli/*.h);
// - every public header is needed by the CLI (or by another public header);
// - a file that tests HALO_WITH_CUDA_KERNELS is one that CMakeLists.txt compiles with it.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "halo/file_system.h"

namespace halo {
namespace {

const std::vector<std::string> kFolderOrder = {"base",  "text",      "data",  "report", "io",       "ops",
                                               "model", "inference", "train", "eval",   "pipeline", "cli"};

struct SourceFile {
  std::string path;    // relative to src/, e.g. "ops/rope.cpp"
  std::string folder;  // "ops"
  std::string text;
};

void collect(const std::string& root, const std::string& relative, std::vector<SourceFile>& out) {
  for (const std::string& name : list_directory(join_path(root, relative))) {
    const std::string rel = relative.empty() ? name : relative + "/" + name;
    const std::string path = join_path(root, rel);
    if (is_directory(path)) {
      collect(root, rel, out);
    } else {
      out.push_back({rel, rel.substr(0, rel.find('/')), read_file(path)});
    }
  }
}

std::vector<SourceFile> sources() {
  std::vector<SourceFile> files;
  collect(HALO_SOURCE_DIR "/src", "", files);
  return files;
}

std::vector<std::string> quoted_includes(const std::string& text) {
  static const std::regex include(R"(#include\s+"([^"]+)\")");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), include); it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

size_t rank_of(const std::string& folder) {
  for (size_t i = 0; i < kFolderOrder.size(); ++i) {
    if (kFolderOrder[i] == folder) return i;
  }
  return kFolderOrder.size();
}

// Public header "X.h" -> the folder of src/<folder>/X.cpp or X_<part>.cpp ("" when none).
std::map<std::string, std::string> public_header_folders(const std::vector<SourceFile>& files) {
  std::map<std::string, std::string> out;
  for (const std::string& header : list_directory(HALO_SOURCE_DIR "/include/halo")) {
    const std::string stem = header.substr(0, header.size() - 2);
    for (const SourceFile& f : files) {
      const std::string name = base_name(f.path);
      const bool implements = name == stem + ".cpp" || (name.rfind(stem + "_", 0) == 0 && name.size() > 4 &&
                                                        name.substr(name.size() - 4) == ".cpp");
      if (implements && (out[header].empty() || rank_of(f.folder) < rank_of(out[header]))) out[header] = f.folder;
    }
    out.emplace(header, "");
  }
  return out;
}

TEST(Layout, SourceFoldersAreKnownAndHoldEveryFile) {
  for (const SourceFile& f : sources()) {
    EXPECT_NE(f.path.find('/'), std::string::npos) << "src/" << f.path << " belongs in a folder";
    EXPECT_LT(rank_of(f.folder), kFolderOrder.size()) << "src/" << f.path << ": folder not in the documented order";
  }
}

TEST(Layout, EveryPublicHeaderHasItsImplementation) {
  for (const auto& [header, folder] : public_header_folders(sources())) {
    EXPECT_FALSE(folder.empty()) << "include/halo/" << header << " has no src/<folder>/"
                                 << header.substr(0, header.size() - 2) << "[_part].cpp";
  }
}

TEST(Layout, FilesIncludeOnlyTheirFolderOrEarlierOnes) {
  const std::vector<SourceFile> files = sources();
  const std::map<std::string, std::string> public_folders = public_header_folders(files);
  for (const SourceFile& f : files) {
    for (const std::string& include : quoted_includes(f.text)) {
      if (include.find('/') == std::string::npos) continue;  // generated in the build tree (halo_git_commit.h)
      std::string target;
      if (include.rfind("halo/", 0) == 0) {
        const auto found = public_folders.find(include.substr(5));
        ASSERT_NE(found, public_folders.end()) << "src/" << f.path << " includes unknown " << include;
        target = found->second;
      } else {
        target = include.substr(0, include.find('/'));
        EXPECT_TRUE(path_exists(HALO_SOURCE_DIR "/src/" + include))
            << "src/" << f.path << ": private includes are spelled from src/ (\"ops/rope.h\"), not " << include;
      }
      EXPECT_LE(rank_of(target), rank_of(f.folder))
          << "src/" << f.path << " (" << f.folder << ") includes " << include << " (" << target << ")";
      if (f.folder == "cli") {
        EXPECT_TRUE(include.rfind("halo/", 0) == 0 || include.rfind("cli/", 0) == 0)
            << "src/" << f.path << ": the CLI uses the public API only, not " << include;
      }
    }
  }
}

TEST(Layout, PublicHeadersAreTheOnesTheCliNeeds) {
  std::set<std::string> needed;
  std::vector<std::string> pending;
  for (const SourceFile& f : sources()) {
    if (f.folder != "cli") continue;
    for (const std::string& include : quoted_includes(f.text)) {
      if (include.rfind("halo/", 0) == 0 && needed.insert(include).second) pending.push_back(include);
    }
  }
  while (!pending.empty()) {
    const std::string header = pending.back();
    pending.pop_back();
    for (const std::string& include : quoted_includes(read_file(HALO_SOURCE_DIR "/include/" + header))) {
      EXPECT_EQ(include.rfind("halo/", 0), 0u) << header << " includes the private header " << include;
      if (needed.insert(include).second) pending.push_back(include);
    }
  }
  for (const std::string& header : list_directory(HALO_SOURCE_DIR "/include/halo")) {
    EXPECT_TRUE(needed.count("halo/" + header))
        << "include/halo/" << header << " is not used by the CLI: move it beside its .cpp under src/";
  }
}

// CMakeLists.txt defines HALO_WITH_CUDA_KERNELS for the ops' entry points (HALO_OPS) and the files
// named beside them only; in any other file an #ifdef on it is compiled out without a word, and
// the kernel behind it never runs (the fused lightning decode step did not, on 2026-12-07).
TEST(Layout, KernelDispatchIsCompiledWithTheCudaDefinition) {
  const std::string cmake = read_file(HALO_SOURCE_DIR "/CMakeLists.txt");
  auto block = [&](const std::string& start, const std::string& end) {
    const size_t from = cmake.find(start);
    if (from == std::string::npos) return std::string();
    return cmake.substr(from, cmake.find(end, from + start.size()) - from);
  };
  const std::string ops = block("set(HALO_OPS ", ")"), marked = block("set_source_files_properties(${HALO_OPS}", "PROPERTIES");
  ASSERT_NE(ops.find("src/ops/rope.cpp"), std::string::npos) << "no set(HALO_OPS ...) in CMakeLists.txt";
  ASSERT_NE(marked.find("HALO_OPS"), std::string::npos) << "no set_source_files_properties(${HALO_OPS} ...)";
  int dispatching = 0;
  for (const SourceFile& f : sources()) {
    if (f.text.find("HALO_WITH_CUDA_KERNELS") == std::string::npos) continue;
    ++dispatching;
    const std::string path = "src/" + f.path;
    EXPECT_TRUE(ops.find(path) != std::string::npos || marked.find(path) != std::string::npos)
        << path << " tests HALO_WITH_CUDA_KERNELS, which CMakeLists.txt does not define for it (HALO_OPS)";
  }
  EXPECT_GE(dispatching, 5);  // rope, decode attention, lightning attention and decode, losses, decode graph
}

}  // namespace
}  // namespace halo
