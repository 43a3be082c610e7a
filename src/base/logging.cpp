// spdlog behind halo::log: one stderr logger, colored when stderr is a terminal.
#include "halo/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "halo/error.h"

namespace halo::log {
namespace {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto made = std::make_shared<spdlog::logger>("halo", sink);
    made->set_pattern("%^[%L]%$ %v");
    made->set_level(spdlog::level::info);
    return made;
  }();
  return *instance;
}

Level current = Level::info;

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

void set_level(Level l) {
  current = l;
  logger().set_level(to_spdlog(l));
}

Level level() {
  return current;
}

Level parse_level(const std::string& name) {
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn") return Level::warn;
  if (name == "error") return Level::error;
  if (name == "off") return Level::off;
  usage_fail("--log-level: unknown level '", name, "' (use debug, info, warn, error or off)");
}

void debug(const std::string& m) {
  logger().debug(m);
}
void info(const std::string& m) {
  logger().info(m);
}
void warn(const std::string& m) {
  logger().warn(m);
}
void error(const std::string& m) {
  logger().error(m);
}

}  // namespace halo::log
