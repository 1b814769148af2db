// tools/pg_infer_engine/main.cpp: the engine process. Started by the extension's supervisor with its
// working directory in the data directory; listens on a Unix-domain socket that only its own user can
// open, serves each connection on a thread (engine/server.h), and exits on SIGTERM or when its parent dies.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "engine/server.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

void usage() {
  std::fprintf(stderr,
               "usage: pg_infer_engine --socket PATH [--model-dir DIR] [--threads N] [--max-queue N]\n"
               "                       [--request-timeout SECONDS] [--kv-cache-mb MB] [--parent-pid PID]\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path;
  pid_t parent = 0;
  pginfer::ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    const char* value = argv[++i];
    if (flag == "--socket") {
      socket_path = value;
    } else if (flag == "--model-dir") {
      options.model_dir = value;
    } else if (flag == "--threads") {
      options.threads = std::atoi(value);
    } else if (flag == "--max-queue") {
      options.max_queue = std::atoll(value);
    } else if (flag == "--request-timeout") {
      options.request_timeout_s = std::atof(value);
    } else if (flag == "--kv-cache-mb") {
      options.kv_cache_bytes = std::atoll(value) << 20;
    } else if (flag == "--parent-pid") {
      parent = (pid_t)std::atol(value);
    } else {
      usage();
      return 2;
    }
  }
  if (socket_path.empty()) {
    usage();
    return 2;
  }
  // Never outlive the supervisor: killed with it, and a check in case it died before this line.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != 0 && getppid() != parent) return 1;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "pg_infer_engine: socket path \"%s\" is too long\n", socket_path.c_str());
    return 1;
  }
  std::strcpy(addr.sun_path, socket_path.c_str());
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  umask(0077);  // the socket: owner only
  unlink(socket_path.c_str());
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 128) != 0) {
    std::fprintf(stderr, "pg_infer_engine: cannot listen on \"%s\": %s\n", socket_path.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "pg_infer_engine: listening on \"%s\" (pid %d)\n", socket_path.c_str(), (int)getpid());

  // A device that failed beyond repair (a GPU error that corrupts its context): end the process, so that the
  // supervisor starts a new engine and the registry loads the models again, after a moment for the failed
  // requests' error replies to reach their sessions.
  options.on_device_lost = [](const std::string& model, const pginfer::Status& why) {
    std::fprintf(stderr, "pg_infer_engine: model \"%s\": %s; the engine restarts\n", model.c_str(),
                 why.message().c_str());
    std::fflush(stderr);
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      _exit(3);
    }).detach();
  };
  pginfer::Server server(options);
  while (!g_stop) {
    pollfd p{listener, POLLIN, 0};
    const int n = poll(&p, 1, 1000);
    if (parent != 0 && getppid() != parent) break;
    if (n <= 0) continue;
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread([&server, fd] {
      server.serve_connection(fd);
      close(fd);
    }).detach();
  }
  unlink(socket_path.c_str());
  std::fprintf(stderr, "pg_infer_engine: stopped\n");
  std::fflush(stderr);
  // Connection threads may still be running: leave without destructors (weights are mapped read-only,
  // nothing needs flushing).
  _exit(0);
}
