// A small blocking HTTP/1.1 client over a connected socket (tests' C++ client).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::testserver {

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool keep_alive = true;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Client {
 public:
  // Connects to ip:port from the calling thread's network namespace. Reads
  // and writes fail after `timeout_s` seconds without progress (a stalled
  // connection fails a test instead of hanging it).
  static Result<Client> connect(const std::string& ip, uint16_t port, int timeout_s = 20);
  explicit Client(UniqueFd fd);
  Client(Client&&) noexcept;
  ~Client();

  int fd() const { return fd_.get(); }
  // Write a request (no body) without reading the answer (pipelining).
  Status send_get(const std::string& target, bool keep_alive = true, const std::string& method = "GET");
  Status send_raw(const std::string& bytes);
  Result<Response> read_response(bool head_request = false);
  Result<Response> get(const std::string& target) {
    XO_TRY(send_get(target));
    return read_response();
  }

 private:
  struct Impl;
  UniqueFd fd_;
  std::unique_ptr<Impl> impl_;  // holds the Beast read buffer between responses
};

}  // namespace xo::testserver
