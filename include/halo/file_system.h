// Files and directories through POSIX calls. The project does not use std::filesystem:
// libtorch.so (torch 2.11) exports its own copies of std::filesystem functions, built against
// a newer libstdc++, and in a binary linked with torch they win symbol lookup and can crash
// (remove_all did). Every path helper the project needs lives here instead. No torch here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo {

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
// Size in bytes of a regular file; fails naming the path.
uint64_t file_size(const std::string& path);

// mkdir -p; fails naming the directory.
void create_directories(const std::string& dir);
// Names of the entries of a directory (no "." or ".."), sorted.
std::vector<std::string> list_directory(const std::string& dir);
// rm -rf; silent when the path does not exist.
void remove_tree(const std::string& path);

std::string join_path(const std::string& dir, const std::string& name);
std::string parent_directory(const std::string& path);
// The last component, trailing slashes ignored as basename(1) does: "runs/x/" -> "x".
std::string base_name(const std::string& path);

// The absolute path of an existing file with symbolic links resolved; empty when it does not exist.
std::string canonical_path(const std::string& path);

// The files that `inputs` name, in order: a file as is; a directory's regular files, recursively,
// sorted by path; anything else as a glob(3) pattern whose matches are sorted (directories among
// them recursed). A file reached twice is kept once. Fails naming an input that matches nothing.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

// Fails naming the path unless it is a regular file (missing, a directory, or a FIFO, device or
// socket: opening a FIFO for reading would wait for a writer, /dev/zero never ends). Called
// before every open for reading.
void require_regular_file(const std::string& path);
// Reads a whole file into a string, or fails naming the path.
std::string read_file(const std::string& path);
// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, then rename.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Copies a file atomically (read + write_file_atomic).
void copy_file_atomic(const std::string& from, const std::string& to);

}  // namespace halo
