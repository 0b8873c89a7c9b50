// The MQTT client libraries alone, without the plugin: acknowledged QoS 1 publishes per second
// and CPU per publish for Paho C++ (async_client), Paho C (MQTTAsync) and libmosquitto, each
// publishing from one thread with up to RD_BENCH_WINDOW (1000) unacknowledged, the way the plugin
// uses them. This is what chose libmosquitto for mqtt_republish. Run:
//   build-*/bin/mqtt_client_bench            (starts its own mosquitto)
//   RD_BENCH_PORT=18883 build-*/bin/mqtt_client_bench   (an anonymous broker on 127.0.0.1)
// RD_BENCH_JOBS (50000) sets the publishes per client. Only what it measures is printed; the
// checks are that every publish was acknowledged.
#include <MQTTAsync.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <mqtt/async_client.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "mqtt_test_support.hpp"
#include "test_support.hpp"

using namespace rdtest;

namespace {

const char kPayload[] =
    R"({"device_id":"dev-1","seq":12345,"sent_ns":1700000000000000000,"temp":21.5})";
const char kTopic[] = "bench/tenant-1/dev-1";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// Up to `window` publishes unacknowledged; acknowledgements arrive on the library's thread.
class Window {
 public:
  explicit Window(int window) : window_(window) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return out_ < window_; });
    ++out_;
  }
  void release(bool ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --out_;
      if (ok) ++acked_;
    }
    cv_.notify_all();
  }
  long drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return out_ == 0; });
    const long acked = acked_;
    acked_ = 0;
    return acked;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int window_;
  int out_ = 0;
  long acked_ = 0;
};

struct Usage {
  double cpu_s = 0;
  long switches = 0;
};
Usage usage() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return {static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
              static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6,
          r.ru_nvcsw + r.ru_nivcsw};
}

// Runs `publish` n times (after a warm-up) and prints rate and CPU per publish.
template <typename Publish>
long measure(const char* name, int n, int window, Window& w, Publish publish) {
  for (int i = 0; i < 2000; ++i) publish();
  w.drain();
  const Usage u0 = usage();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) publish();
  const long acked = w.drain();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Usage u1 = usage();
  std::printf(
      "%-13s QoS 1, %d publishes, window %d: %8.0f acked/s, CPU %6.2f us/publish, %.2f "
      "context switches/publish\n",
      name, n, window, n / s, (u1.cpu_s - u0.cpu_s) * 1e6 / n,
      static_cast<double>(u1.switches - u0.switches) / n);
  return acked;
}

class MqttClientBench : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const int port = env_int("RD_BENCH_PORT", 0); port > 0) {
      port_ = port;
    } else {
      broker_ = std::make_unique<Mosquitto>("bench", "bench-pw");
      port_ = broker_->port();
      user_ = "bench";
      pass_ = "bench-pw";
    }
  }
  int n_ = env_int("RD_BENCH_JOBS", 50000);
  int window_ = env_int("RD_BENCH_WINDOW", 1000);
  std::unique_ptr<Mosquitto> broker_;
  int port_ = 0;
  std::string user_, pass_;
};

}  // namespace

TEST_F(MqttClientBench, PahoCpp) {
  mqtt::create_options create(MQTTVERSION_3_1_1);
  create.set_max_buffered_messages(1 << 20);
  mqtt::async_client client("tcp://127.0.0.1:" + std::to_string(port_), "client-bench-paho-cpp",
                            create, nullptr);
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  opts.set_max_inflight(65535);
  if (!user_.empty()) {
    opts.set_user_name(user_);
    opts.set_password(pass_);
  }
  client.connect(opts)->wait();
  Window w(window_);
  struct Listener final : mqtt::iaction_listener {
    explicit Listener(Window& w) : w(w) {}
    void on_success(const mqtt::token&) override { w.release(true); }
    void on_failure(const mqtt::token&) override { w.release(false); }
    Window& w;
  } listener(w);
  const long acked = measure("paho-cpp", n_, window_, w, [&] {
    w.acquire();
    client.publish(mqtt::message::create(kTopic, kPayload, sizeof kPayload - 1, 1, false), nullptr,
                   listener);
  });
  EXPECT_EQ(acked, n_);
  client.disconnect()->wait();
}

TEST_F(MqttClientBench, PahoC) {
  MQTTAsync client = nullptr;
  MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer;
  create.MQTTVersion = MQTTVERSION_3_1_1;
  create.maxBufferedMessages = 1 << 20;
  ASSERT_EQ(MQTTAsync_createWithOptions(
                &client, ("tcp://127.0.0.1:" + std::to_string(port_)).c_str(),
                "client-bench-paho-c", MQTTCLIENT_PERSISTENCE_NONE, nullptr, &create),
            MQTTASYNC_SUCCESS);
  struct Ctx {
    explicit Ctx(int window) : w(window) {}
    Window w;
    std::mutex mu;
    std::condition_variable cv;
    int connected = 0;  // 1 ok, -1 failed
  } ctx(window_);
  MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
  opts.cleansession = 1;
  opts.maxInflight = 65535;
  if (!user_.empty()) {
    opts.username = user_.c_str();
    opts.password = pass_.c_str();
  }
  opts.context = &ctx;
  opts.onSuccess = [](void* c, MQTTAsync_successData*) {
    auto* x = static_cast<Ctx*>(c);
    std::lock_guard<std::mutex> lock(x->mu);
    x->connected = 1;
    x->cv.notify_all();
  };
  opts.onFailure = [](void* c, MQTTAsync_failureData*) {
    auto* x = static_cast<Ctx*>(c);
    std::lock_guard<std::mutex> lock(x->mu);
    x->connected = -1;
    x->cv.notify_all();
  };
  ASSERT_EQ(MQTTAsync_connect(client, &opts), MQTTASYNC_SUCCESS);
  {
    std::unique_lock<std::mutex> lock(ctx.mu);
    ctx.cv.wait(lock, [&] { return ctx.connected != 0; });
  }
  ASSERT_EQ(ctx.connected, 1);
  const long acked = measure("paho-c", n_, window_, ctx.w, [&] {
    ctx.w.acquire();
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.context = &ctx.w;
    ro.onSuccess = [](void* c, MQTTAsync_successData*) { static_cast<Window*>(c)->release(true); };
    ro.onFailure = [](void* c, MQTTAsync_failureData*) { static_cast<Window*>(c)->release(false); };
    if (MQTTAsync_send(client, kTopic, sizeof kPayload - 1, kPayload, 1, 0, &ro) !=
        MQTTASYNC_SUCCESS) {
      ctx.w.release(false);
    }
  });
  EXPECT_EQ(acked, n_);
  MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
  d.timeout = 1000;
  MQTTAsync_disconnect(client, &d);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  MQTTAsync_destroy(&client);
}

TEST_F(MqttClientBench, Libmosquitto) {
  mosquitto_lib_init();
  Window w(window_);
  struct mosquitto* m = mosquitto_new("client-bench-libmosquitto", true, &w);
  ASSERT_NE(m, nullptr);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
  if (!user_.empty()) mosquitto_username_pw_set(m, user_.c_str(), pass_.c_str());
  mosquitto_publish_callback_set(
      m, [](struct mosquitto*, void* obj, int) { static_cast<Window*>(obj)->release(true); });
  ASSERT_EQ(mosquitto_connect(m, "127.0.0.1", port_, 30), MOSQ_ERR_SUCCESS);
  ASSERT_EQ(mosquitto_loop_start(m), MOSQ_ERR_SUCCESS);  // its network thread
  const long acked = measure("libmosquitto", n_, window_, w, [&] {
    w.acquire();
    if (mosquitto_publish(m, nullptr, kTopic, sizeof kPayload - 1, kPayload, 1, false) !=
        MOSQ_ERR_SUCCESS) {
      w.release(false);
    }
  });
  EXPECT_EQ(acked, n_);
  mosquitto_disconnect(m);
  mosquitto_loop_stop(m, false);
  mosquitto_destroy(m);
}
