#include "bench/non_reading_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace coalesce::stress {
namespace {

// HTTP/2 frame types and flags (RFC 9113).
constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kPing = 0x6,
                  kGoAway = 0x7, kWindowUpdate = 0x8;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
constexpr uint16_t kMaxConcurrentStreams = 0x3, kInitialWindowSize = 0x4, kMaxFrameSize = 0x5;

uint32_t ReadUint(absl::string_view bytes, int size) {
  uint32_t value = 0;
  for (int i = 0; i < size; ++i) value = value << 8 | static_cast<uint8_t>(bytes[i]);
  return value;
}

void AppendUint(std::string& out, uint32_t value, int size) {
  for (int i = size - 1; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i) & 0xff));
}

// An HPACK integer with a prefix of `bits` bits (RFC 7541, 5.1), the prefix's other bits zero.
void AppendHpackInteger(std::string& out, uint64_t value, int bits) {
  const uint64_t most = (1u << bits) - 1;
  if (value < most) {
    out.push_back(static_cast<char>(value));
    return;
  }
  out.push_back(static_cast<char>(most));
  for (value -= most; value >= 128; value >>= 7) {
    out.push_back(static_cast<char>(value % 128 + 128));
  }
  out.push_back(static_cast<char>(value));
}

// A header field as a literal without indexing, new name, no Huffman coding (RFC 7541, 6.2.2).
void AppendHeader(std::string& out, absl::string_view name, absl::string_view value) {
  out.push_back(0);
  AppendHpackInteger(out, name.size(), 7);
  out.append(name.data(), name.size());
  AppendHpackInteger(out, value.size(), 7);
  out.append(value.data(), value.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<NonReadingClient>> NonReadingClient::Connect(
    const std::string& address, std::vector<std::pair<std::string, std::string>> metadata) {
  size_t colon = address.rfind(':');
  int port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("expected IPv4 host:port, got '", address, "'"));
  }
  addr.sin_port = htons(port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", address, ": ", strerror(error)));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::unique_ptr<NonReadingClient> client(new NonReadingClient(fd));
  client->metadata_ = std::move(metadata);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  constexpr absl::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (!client->Write(kPreface, deadline)) return absl::UnavailableError("cannot send the preface");
  // Our SETTINGS: the defaults (a 64 KiB window that is never raised).
  client->SendFrame(kSettings, 0, 0, "");
  // The server's SETTINGS come first; wait for them, so that its limits are known.
  while (!client->settings_received_ && !client->closed_ && absl::Now() < deadline) {
    client->Pump(deadline);
  }
  if (client->closed_) return absl::UnavailableError("the server closed the connection");
  return client;
}

NonReadingClient::~NonReadingClient() { close(fd_); }

bool NonReadingClient::Unary(absl::string_view method, absl::string_view message,
                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  uint32_t stream = 0;
  return StartStream(method, deadline, &stream) &&
         SendMessage(stream, message, /*end_stream=*/true, deadline);
}

bool NonReadingClient::OpenStream(absl::string_view method, absl::Duration timeout) {
  return StartStream(method, absl::Now() + timeout, &current_stream_);
}

bool NonReadingClient::SendOnStream(absl::string_view message, absl::Duration timeout) {
  return SendMessage(current_stream_, message, /*end_stream=*/false, absl::Now() + timeout);
}

bool NonReadingClient::StartStream(absl::string_view method, absl::Time deadline, uint32_t* id) {
  Pump(absl::InfinitePast());
  while (!closed_ && static_cast<int64_t>(open_.size()) >= max_concurrent_streams_) {
    if (!Pump(deadline)) return false;
  }
  if (closed_) return false;
  std::string block;
  AppendHeader(block, ":method", "POST");
  AppendHeader(block, ":scheme", "http");
  AppendHeader(block, ":path", method);
  AppendHeader(block, ":authority", "localhost");
  AppendHeader(block, "content-type", "application/grpc");
  AppendHeader(block, "te", "trailers");
  for (const auto& [name, value] : metadata_) AppendHeader(block, name, value);
  *id = next_stream_;
  next_stream_ += 2;
  open_[*id] = initial_window_;
  SendFrame(kHeaders, kEndHeaders, *id, block);
  return !closed_;
}

bool NonReadingClient::SendMessage(uint32_t stream, absl::string_view message, bool end_stream,
                                   absl::Time deadline) {
  std::string data;
  data.push_back(0);  // Not compressed.
  AppendUint(data, static_cast<uint32_t>(message.size()), 4);
  data.append(message.data(), message.size());
  absl::string_view rest = data;
  while (!rest.empty()) {
    Pump(absl::InfinitePast());
    auto it = open_.find(stream);
    if (closed_ || it == open_.end()) return false;
    const int64_t room = std::min({connection_window_, it->second, max_frame_});
    if (room <= 0) {
      if (!Pump(deadline)) return false;
      continue;
    }
    const size_t size = std::min<size_t>(rest.size(), room);
    const bool last = size == rest.size();
    connection_window_ -= size;
    it->second -= size;
    SendFrame(kData, last && end_stream ? kEndStream : 0, stream, rest.substr(0, size));
    rest.remove_prefix(size);
  }
  if (closed_) return false;
  ++messages_sent_;
  return true;
}

void NonReadingClient::SendFrame(uint8_t type, uint8_t flags, uint32_t stream,
                                 absl::string_view payload) {
  std::string frame;
  AppendUint(frame, static_cast<uint32_t>(payload.size()), 3);
  frame.push_back(static_cast<char>(type));
  frame.push_back(static_cast<char>(flags));
  AppendUint(frame, stream, 4);
  frame.append(payload.data(), payload.size());
  // The server reads whatever arrives, so a write only waits for the kernel's buffers.
  if (!Write(frame, absl::Now() + absl::Seconds(30))) closed_ = true;
}

bool NonReadingClient::Write(absl::string_view bytes, absl::Time deadline) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    // Read meanwhile: a server that is writing to us may wait for our ACKs.
    Pump(absl::InfinitePast());
    pollfd p{fd_, POLLOUT, 0};
    int wait_ms = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 100));
    if (poll(&p, 1, wait_ms) == 0 && absl::Now() >= deadline) return false;
  }
  return true;
}

bool NonReadingClient::Pump(absl::Time deadline) {
  bool progress = false;
  while (!closed_) {
    pollfd p{fd_, POLLIN, 0};
    int wait_ms = progress ? 0
                           : static_cast<int>(std::clamp<int64_t>(
                                 absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 100));
    int ready = poll(&p, 1, wait_ms);
    if (ready == 0) {
      if (progress || absl::Now() >= deadline) break;
      continue;
    }
    char buffer[65536];
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      closed_ = true;
      break;
    }
    if (n < 0) continue;
    input_.append(buffer, n);
    progress = true;
    while (input_.size() >= 9) {
      const uint32_t length = ReadUint(input_, 3);
      if (input_.size() < 9 + length) break;
      const absl::string_view frame(input_.data(), 9 + length);
      HandleFrame(static_cast<uint8_t>(frame[3]), static_cast<uint8_t>(frame[4]),
                  ReadUint(frame.substr(5), 4) & 0x7fffffff, frame.substr(9));
      input_.erase(0, 9 + length);
    }
  }
  return progress && !closed_;
}

void NonReadingClient::HandleFrame(uint8_t type, uint8_t flags, uint32_t stream,
                                   absl::string_view payload) {
  switch (type) {
    case kSettings:
      if (flags & kAck) return;
      settings_received_ = true;
      for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
        const uint16_t id = ReadUint(payload.substr(i), 2);
        const int64_t value = ReadUint(payload.substr(i + 2), 4);
        if (id == kMaxConcurrentStreams) max_concurrent_streams_ = value;
        if (id == kMaxFrameSize) max_frame_ = value;
        if (id == kInitialWindowSize) {
          for (auto& [id, window] : open_) window += value - initial_window_;
          initial_window_ = value;
        }
      }
      SendFrame(kSettings, kAck, 0, "");
      return;
    case kWindowUpdate: {
      const int64_t increment = ReadUint(payload, 4) & 0x7fffffff;
      if (stream == 0) {
        connection_window_ += increment;
      } else if (auto it = open_.find(stream); it != open_.end()) {
        it->second += increment;
      }
      return;
    }
    case kPing:
      if (!(flags & kAck)) SendFrame(kPing, kAck, 0, payload);
      return;
    case kGoAway:
      closed_ = true;
      return;
    case kRstStream:
      open_.erase(stream);
      return;
    case kData:
    case kHeaders:
      // Answers are dropped unread, and no window is granted for them.
      if (flags & kEndStream) open_.erase(stream);
      return;
    default:
      return;
  }
}

}  // namespace coalesce::stress
