// File primitives for checkpoints: atomic writes, whole-file reads and directory helpers, with
// errors that name the path and the system's reason.
//
// Note [Atomic writes]
// A file is written to a temporary name in its own directory, fsync'd, renamed over the final
// name, and then the directory is fsync'd so the rename itself is durable. A process killed at
// any point leaves either the old file or the new one, never a torn mix; at worst a stray
// "*.tmp.<pid>" file stays behind.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace zt {

void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file_bytes(const std::string& path);
bool path_exists(const std::string& path);
// Size in bytes of a regular file; an error naming it when it cannot be read.
size_t file_size(const std::string& path);
// mkdir -p, fsyncing each parent a directory was created in.
void make_directories(const std::string& path);
// rm -r; no error when path does not exist.
void remove_tree(const std::string& path);
// rename(2), then fsync of the destination's directory.
void rename_durable(const std::string& from, const std::string& to);
void fsync_directory(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);

}  // namespace zt
