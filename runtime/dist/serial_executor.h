// Runs tasks one at a time, in submission order, on a background thread: the asynchronous side
// of a Communicator (every rank must issue collectives in the same order).
#ifndef STRATA_RUNTIME_DIST_SERIAL_EXECUTOR_H_
#define STRATA_RUNTIME_DIST_SERIAL_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/dist/communicator.h"

namespace strata {

class SerialExecutor {
 public:
  SerialExecutor() : worker_([this] { Loop(); }) {}
  ~SerialExecutor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  Communicator::Handle Submit(std::function<absl::Status()> op) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    auto future = std::make_shared<std::shared_future<absl::Status>>(promise->get_future());
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back([op = std::move(op), promise] { promise->set_value(op()); });
    }
    cv_.notify_all();
    return Communicator::Handle(
        std::make_shared<std::function<absl::Status()>>([future] { return future->get(); }));
  }

 private:
  void Loop() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // Stopping with nothing left.
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread worker_;  // Last: started after the members it uses.
};

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_SERIAL_EXECUTOR_H_
