// Names the calling thread (at most 15 characters), so `top -H`, `ps -L`, perf and /proc show which
// of the daemon's threads does the work (e.g. rd-fetch-0, rd-webhook-0).
#pragma once

#include <pthread.h>

#include <string>

namespace rd {

inline void name_thread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace rd
