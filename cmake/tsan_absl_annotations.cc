// ThreadSanitizer builds only (cmake/sanitizers.cmake links this file into every test
// executable when COALESCE_SANITIZE=thread).
//
// Why: the distribution's abseil is not built with -fsanitize=thread, so TSan cannot see the
// synchronisation inside absl::Mutex (its own atomics and futexes, not pthreads) and reports a
// data race on every member an absl::Mutex guards, e.g. Executor::batches_ between Dispatch()
// and the worker's Await(). Suppressing those reports would hide real races in the same code.
// Instead, this file interposes the out-of-line entry points of absl::Mutex, CondVar,
// Notification, BlockingCounter and Barrier: each wrapper calls the library's function (found
// with dlsym(RTLD_NEXT)) and tells TSan what it synchronises, with __tsan_release() before
// anything that can let another thread proceed and __tsan_acquire() after anything that waits
// for one. Definitions in the executable take precedence over the shared library's, both for
// our calls and for abseil's own calls between its functions, which go through the PLT.
//
// This adds happens-before edges only where abseil really creates them, so it cannot hide a
// race that abseil's real synchronisation would not prevent.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "tsan_absl_annotations.cc spells abseil's mangled names with its inline namespace"
#endif

namespace {

#define COALESCE_STR2(x) #x
#define COALESCE_STR(x) COALESCE_STR2(x)

// The library's definition of the abseil function whose mangled name is
// `prefix` + "4absl" + <inline namespace> + `rest`; aborts if it cannot be found.
void* Real(const char* prefix, const char* rest) {
  static const std::string ns = COALESCE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  std::string name = std::string(prefix) + "4absl" + std::to_string(ns.size()) + ns + rest;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_annotations: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return f;
}

template <typename F>
F RealMember(const char* rest) {
  return reinterpret_cast<F>(Real("_ZN", rest));
}

template <typename F>
F RealConstMember(const char* rest) {
  return reinterpret_cast<F>(Real("_ZNK", rest));
}

static_assert(sizeof(absl::Notification) == 2 * sizeof(absl::Mutex),
              "absl::Notification is no longer {Mutex, atomic<bool>}; update NotificationKey");

// The address of a Notification's flag (it follows the Mutex). HasBeenNotified() is inline and
// loads the flag with acquire order in our instrumented code, so Notify() releases on the
// flag's address and the out-of-line waits acquire on it too.
void* NotificationKey(const absl::Notification* n) {
  return const_cast<char*>(reinterpret_cast<const char*>(n) + sizeof(absl::Mutex));
}

// A Condition that evaluates `cond` the way TSan must see it: absl evaluates a waiter's
// condition with the mutex held, in the waiter or in whichever thread unlocks, so each
// evaluation acquires the mutex before and releases it after, like a critical section.
// The unlocking thread may evaluate another waiter's condition, which that waiter built and
// queued inside abseil, out of TSan's sight. So the waiter releases on the Annotated once it is
// built (and with it the caller's `cond`, built before), and Eval acquires on it before reading
// anything; the wrapping Condition itself is built by abseil's out-of-line (void*) constructor
// and read inside abseil, where TSan sees neither. Without this, two threads waiting on one
// Notification showed a false race.
class Annotated {
 public:
  Annotated(absl::Mutex* mu, const absl::Condition& cond)
      : mu_(mu), inner_(&cond), cond_(&Annotated::Eval, static_cast<void*>(this)) {
    __tsan_release(this);
  }
  const absl::Condition& get() const { return cond_; }

 private:
  static bool Eval(void* arg) {
    __tsan_acquire(arg);
    Annotated* self = static_cast<Annotated*>(arg);
    __tsan_acquire(self->mu_);
    bool result = self->inner_->Eval();
    __tsan_release(self->mu_);
    return result;
  }

  absl::Mutex* const mu_;
  const absl::Condition* const inner_;
  const absl::Condition cond_;
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// ---- Mutex: lock = acquire, unlock = release; waits release and then acquire.

void Mutex::Lock() {
  static auto real = RealMember<void (*)(Mutex*)>("5Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  static auto real = RealMember<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  static auto real = RealMember<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static auto real = RealMember<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static auto real = RealMember<void (*)(Mutex*)>("5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  static auto real = RealMember<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::Await(const Condition& cond) {
  static auto real =
      RealMember<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);
  real(this, Annotated(this, cond).get());
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_release(this);
  bool result = real(this, Annotated(this, cond).get(), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_release(this);
  bool result = real(this, Annotated(this, cond).get(), deadline);
  __tsan_acquire(this);
  return result;
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real =
      RealMember<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  real(this, Annotated(this, cond).get());
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real =
      RealMember<void (*)(Mutex*, const Condition&)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  real(this, Annotated(this, cond).get());
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  bool result = real(this, Annotated(this, cond).get(), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  bool result = real(this, Annotated(this, cond).get(), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  bool result = real(this, Annotated(this, cond).get(), deadline);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = RealMember<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  bool result = real(this, Annotated(this, cond).get(), deadline);
  __tsan_acquire(this);
  return result;
}

// ---- CondVar: waiting unlocks and relocks the mutex.

void CondVar::Wait(Mutex* mu) {
  static auto real = RealMember<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = RealMember<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  bool result = real(this, mu, timeout);
  __tsan_acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = RealMember<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  bool result = real(this, mu, deadline);
  __tsan_acquire(mu);
  return result;
}

// ---- Notification: Notify() releases; the waits (and HasBeenNotified()'s load) acquire.

void Notification::Notify() {
  static auto real = RealMember<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(NotificationKey(this));
  real(this);
}

void Notification::WaitForNotification() const {
  static auto real =
      RealConstMember<void (*)(const Notification*)>("12Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(NotificationKey(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = RealConstMember<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  bool notified = real(this, timeout);
  if (notified) __tsan_acquire(NotificationKey(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static auto real = RealConstMember<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  bool notified = real(this, deadline);
  if (notified) __tsan_acquire(NotificationKey(this));
  return notified;
}

// ---- BlockingCounter and Barrier: arriving releases, leaving the wait acquires.

bool BlockingCounter::DecrementCount() {
  static auto real =
      RealMember<bool (*)(BlockingCounter*)>("15BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return real(this);
}

void BlockingCounter::Wait() {
  static auto real = RealMember<void (*)(BlockingCounter*)>("15BlockingCounter4WaitEv");
  real(this);
  __tsan_acquire(this);
}

bool Barrier::Block() {
  static auto real = RealMember<bool (*)(Barrier*)>("7Barrier5BlockEv");
  __tsan_release(this);
  bool last = real(this);
  __tsan_acquire(this);
  return last;
}

ABSL_NAMESPACE_END
}  // namespace absl
