// tests/unit/server_test.cpp: the engine server (engine/server.h) over a socket pair, without PostgreSQL:
// requests and replies of the wire protocol, the model folder check, and malformed input, which must get
// an error reply or a closed connection, never a crash.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "engine/server.h"
#include "engine/wire.h"
#include "tests/unit/test_models.h"

namespace pginfer {
namespace {

// A server on one end of a socket pair, serving on a thread.
struct Connection {
  int client = -1;
  std::thread serving;

  explicit Connection(Server& server) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    client = fds[0];
    serving = std::thread([&server, fd = fds[1]] {
      server.serve_connection(fd);
      close(fd);
    });
  }
  ~Connection() {
    close(client);
    serving.join();
  }
  // Sends a frame and returns the reply frame (type 0 when the server closed the connection).
  wire::Frame call(const std::string& frame) {
    EXPECT_TRUE(wire::write_all(client, frame).ok());
    wire::Frame reply;
    if (!wire::read_frame(client, &reply).ok()) reply.type = 0;
    return reply;
  }
};

std::string model_dir() { return std::filesystem::path(testing::synthetic_model("tiny", TensorType::Q8_0)).parent_path(); }

// A server over model_dir() with 2 threads.
ServerOptions test_options() {
  ServerOptions o;
  o.model_dir = model_dir();
  o.threads = 2;
  return o;
}

wire::Fields fields_of(const wire::Frame& f) {
  wire::Fields out;
  EXPECT_TRUE(out.parse(f.body));
  return out;
}

TEST(Server, LoadsGeneratesAndAnswersInOrder) {
  Server server(test_options());
  Connection c(server);
  const std::string path = testing::synthetic_model("tiny", TensorType::Q8_0);
  wire::Frame r = c.call(wire::FrameWriter(PGI_MSG_LOAD).str(PGI_F_NAME, "m").str(PGI_F_PATH, path).frame());
  ASSERT_EQ(r.type, PGI_MSG_OK) << fields_of(r).str(PGI_F_MESSAGE);
  // A batch of two prompts gives two texts, each what the prompt gives alone.
  auto generate = [&](std::vector<std::string> prompts) {
    wire::FrameWriter w(PGI_MSG_GENERATE);
    w.str(PGI_F_MODEL, "m").i64(PGI_F_MAX_TOKENS, 6);
    for (const auto& p : prompts) w.str(PGI_F_PROMPT, p);
    wire::Frame reply = c.call(w.frame());
    EXPECT_EQ(reply.type, PGI_MSG_OK);
    return fields_of(reply).all(PGI_F_TEXT);
  };
  const std::vector<std::string> both = generate({"Once upon a time", "Hello"});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0], generate({"Once upon a time"})[0]);
  EXPECT_EQ(both[1], generate({"Hello"})[0]);
  // Unknown model: NotFound with a hint.
  r = c.call(wire::FrameWriter(PGI_MSG_GENERATE).str(PGI_F_MODEL, "nope").str(PGI_F_PROMPT, "x").frame());
  ASSERT_EQ(r.type, PGI_MSG_ERROR);
  int64_t code = 0;
  ASSERT_TRUE(fields_of(r).i64(PGI_F_CODE, 0, &code).ok());
  EXPECT_EQ(code, PGI_ST_NOT_FOUND);
  EXPECT_NE(fields_of(r).str(PGI_F_HINT).find("llm_load_model"), std::string::npos);
}

TEST(Server, RefusesFilesOutsideTheModelFolder) {
  ServerOptions o;
  o.model_dir = model_dir() + "/sub";
  std::filesystem::create_directories(o.model_dir);
  Server server(o);
  Connection c(server);
  // ../ leads out of the folder once resolved.
  const std::string path = o.model_dir + "/../" +
                           std::filesystem::path(testing::synthetic_model("tiny", TensorType::Q8_0)).filename().string();
  wire::Frame r = c.call(wire::FrameWriter(PGI_MSG_LOAD).str(PGI_F_NAME, "m").str(PGI_F_PATH, path).frame());
  ASSERT_EQ(r.type, PGI_MSG_ERROR);
  int64_t code = 0;
  ASSERT_TRUE(fields_of(r).i64(PGI_F_CODE, 0, &code).ok());
  EXPECT_EQ(code, PGI_ST_PERMISSION);
}

TEST(Server, SurvivesMalformedFrames) {
  ServerOptions o;
  o.model_dir = model_dir();
  Server server(o);
  // Fields that do not add up, numbers of the wrong size, unknown types: an ERROR reply each.
  {
    Connection c(server);
    std::string bad = wire::FrameWriter(PGI_MSG_GENERATE).str(PGI_F_MODEL, "m").frame();
    bad.resize(bad.size() - 1);  // the last field is cut short, the frame length still counts it...
    bad[0] = (char)(bad.size() - 4);  // ...fixed so that the frame itself is whole
    EXPECT_EQ(c.call(bad).type, PGI_MSG_ERROR);
    EXPECT_EQ(c.call(wire::FrameWriter(PGI_MSG_GENERATE).str(PGI_F_MAX_TOKENS, "abc").frame()).type, PGI_MSG_ERROR);
    EXPECT_EQ(c.call(wire::FrameWriter((PgiMessage)99).frame()).type, PGI_MSG_ERROR);
    EXPECT_EQ(c.call(wire::FrameWriter(PGI_MSG_DETOKENIZE).str(PGI_F_MODEL, "m").str(PGI_F_IDS, "12345").frame()).type,
              PGI_MSG_ERROR);
    EXPECT_EQ(c.call(wire::FrameWriter(PGI_MSG_LOAD).str(PGI_F_NAME, "x").str(PGI_F_PATH, "/nonexistent")
                         .str(PGI_F_OPTIONS, "{\"threads\": [").frame()).type,
              PGI_MSG_ERROR);
  }
  // A frame header announcing more than the limit: the connection is dropped.
  {
    Connection c(server);
    const char huge[5] = {'\xff', '\xff', '\xff', '\x7f', (char)PGI_MSG_MODELS};
    EXPECT_EQ(c.call(std::string(huge, 5)).type, 0);
  }
  // Random bytes: whatever happens, the server keeps serving new connections.
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    Connection c(server);
    std::string junk(5 + rng() % 64, '\0');
    for (char& ch : junk) ch = (char)rng();
    junk[0] = (char)(junk.size() - 4);  // a length that matches, so the server reads the whole frame
    junk[1] = junk[2] = junk[3] = 0;
    c.call(junk);
  }
  Connection c(server);
  EXPECT_EQ(c.call(wire::FrameWriter(PGI_MSG_MODELS).frame()).type, PGI_MSG_OK);
}

// gpu_memory_fraction is a number greater than 0 and at most 1; other values are refused before anything is
// loaded. On the CPU it is accepted and changes nothing, and a load that ran where it was asked to carries
// no fallback note (only device auto on the CPU beside a GPU that could not take the model does).
TEST(Server, ChecksGpuMemoryFraction) {
  Server server(test_options());
  Connection c(server);
  const std::string path = testing::synthetic_model("tiny", TensorType::Q8_0);
  auto load = [&](const std::string& name, const std::string& options) {
    return c.call(wire::FrameWriter(PGI_MSG_LOAD)
                      .str(PGI_F_NAME, name)
                      .str(PGI_F_PATH, path)
                      .str(PGI_F_OPTIONS, options)
                      .frame());
  };
  for (const char* bad : {"{\"gpu_memory_fraction\": 0}", "{\"gpu_memory_fraction\": 1.5}",
                          "{\"gpu_memory_fraction\": -0.5}", "{\"gpu_memory_fraction\": \"half\"}"}) {
    const wire::Frame r = load("bad", bad);
    ASSERT_EQ(r.type, PGI_MSG_ERROR) << bad;
    int64_t code = 0;
    ASSERT_TRUE(fields_of(r).i64(PGI_F_CODE, 0, &code).ok());
    EXPECT_EQ(code, PGI_ST_INVALID_ARGUMENT) << bad;
    EXPECT_NE(fields_of(r).str(PGI_F_MESSAGE).find("gpu_memory_fraction"), std::string::npos) << bad;
  }
  const wire::Frame unknown = load("bad", "{\"gpu_fraction\": 0.5}");
  ASSERT_EQ(unknown.type, PGI_MSG_ERROR);
  EXPECT_NE(fields_of(unknown).str(PGI_F_MESSAGE).find("gpu_memory_fraction"), std::string::npos)
      << "the known options are listed";
  int loaded = 0;
  for (const char* good : {"{\"gpu_memory_fraction\": 0.5, \"device\": \"cpu\"}", "{\"gpu_memory_fraction\": 1}"}) {
    const wire::Frame r = load("good" + std::to_string(loaded++), good);
    ASSERT_EQ(r.type, PGI_MSG_OK) << good << ": " << fields_of(r).str(PGI_F_MESSAGE);
    EXPECT_FALSE(fields_of(r).has(PGI_F_MESSAGE)) << good;
  }
}

}  // namespace
}  // namespace pginfer
