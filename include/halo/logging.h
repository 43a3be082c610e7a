// Logging for the whole project, backed by spdlog in its own translation unit so that
// spdlog's fmt never meets the fmt headers that torch bundles. Messages are plain strings;
// build them with halo::cat. All log output goes to stderr; stdout is for results.
#pragma once
#include <string>

namespace halo::log {

enum class Level { debug, info, warn, error, off };

void set_level(Level level);
Level level();
// Parses "debug" | "info" | "warn" | "error" | "off"; fails with a usage error otherwise.
Level parse_level(const std::string& name);

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace halo::log
