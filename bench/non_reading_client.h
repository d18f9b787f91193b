#ifndef COALESCE_BENCH_NON_READING_CLIENT_H_
#define COALESCE_BENCH_NON_READING_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace coalesce::stress {

// A gRPC client that never reads its answers. It speaks just enough HTTP/2 over plain TCP to
// start calls and send their messages: it acknowledges the server's SETTINGS and PINGs, obeys
// the server's flow-control windows and its limit on concurrent streams, and reads (and drops)
// whatever the server sends, but never grants the server any flow-control window. So the server
// can send it no more than the connection's initial 64 KiB; every answer past that waits in the
// server, or, where the server pushes back, the client cannot send more. What a server holds
// for such a client is what it measures.
//
// Not thread-safe: one thread drives it.
class NonReadingClient {
 public:
  // Connects to `address` (host:port, IPv4) and exchanges the HTTP/2 preface and SETTINGS.
  // `metadata` goes with every call (an authorization header, say).
  static absl::StatusOr<std::unique_ptr<NonReadingClient>> Connect(
      const std::string& address,
      std::vector<std::pair<std::string, std::string>> metadata = {});
  ~NonReadingClient();

  // Starts a unary call of `method` ("/inference.GRPCInferenceService/ModelInfer") carrying
  // `message` (serialized protobuf bytes). False if the server would not take all of it within
  // `timeout` (it holds as many streams as it allows, or grants no window), or has closed the
  // connection.
  bool Unary(absl::string_view method, absl::string_view message, absl::Duration timeout);
  // Opens a call of `method` whose messages SendOnStream() sends; false as Unary().
  bool OpenStream(absl::string_view method, absl::Duration timeout);
  // Sends `message` on the stream OpenStream() opened last; false as Unary().
  bool SendOnStream(absl::string_view message, absl::Duration timeout);

  // Messages sent in full.
  int64_t messages_sent() const { return messages_sent_; }
  // The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says otherwise).
  int64_t max_concurrent_streams() const { return max_concurrent_streams_; }
  // Whether the server sent GOAWAY or closed the connection.
  bool closed() const { return closed_; }

 private:
  explicit NonReadingClient(int fd) : fd_(fd) {}

  // Opens a stream and sends its HEADERS; false when no stream can be opened by `deadline`.
  bool StartStream(absl::string_view method, absl::Time deadline, uint32_t* id);
  // Sends `message` with gRPC's 5-byte prefix as DATA on `stream`, within the windows.
  bool SendMessage(uint32_t stream, absl::string_view message, bool end_stream,
                   absl::Time deadline);
  void SendFrame(uint8_t type, uint8_t flags, uint32_t stream, absl::string_view payload);
  bool Write(absl::string_view bytes, absl::Time deadline);
  // Reads and handles the frames that arrive by `deadline` (none waited for if it has passed);
  // false once the connection is closed or nothing arrived.
  bool Pump(absl::Time deadline);
  void HandleFrame(uint8_t type, uint8_t flags, uint32_t stream, absl::string_view payload);

  const int fd_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::string input_;
  bool closed_ = false;
  bool settings_received_ = false;
  int64_t messages_sent_ = 0;
  int64_t max_concurrent_streams_ = INT64_MAX;
  int64_t initial_window_ = 65535;
  int64_t max_frame_ = 16384;
  int64_t connection_window_ = 65535;
  uint32_t next_stream_ = 1;
  uint32_t current_stream_ = 0;
  // Streams the server has not ended, and the window each may still send.
  std::map<uint32_t, int64_t> open_;
};

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_NON_READING_CLIENT_H_
