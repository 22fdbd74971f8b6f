#pragma once
// Follows smart-card readers and cards through pcscd (DESIGN §5): a thread of its own waits
// in SCardGetStatusChange on every reader plus the "\\?PnP?\Notification" pseudo-reader and
// reports what changed to a callback. This is what makes card/SERIAL/ appear and vanish.
//
// - At start, every reader present is reported (ReaderAdded) and every card in one
//   (CardInserted): the callback alone gives the full picture.
// - Card events come from pcscd as they happen (pcscd polls a reader every 400 ms at most);
//   reader changes through the PnP pseudo-reader, and at the latest after
//   ReaderMonitorOptions::poll (pcsc-lite 1.9 only notices readers that come or go while a
//   wait is under way).
// - pcscd stopping or restarting (socket activation may stop it at any time): every card and
//   reader is reported gone, then ServiceLost; the monitor reconnects with a backoff of at
//   most max_backoff and reports ServiceRestored and what it finds. Cards lose their session
//   in a restart, so they come back as new insertions.
// - Stopping (destructor) interrupts the wait with SCardCancel: it takes milliseconds.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "card/pcsc.hpp"
#include "secure_bytes.hpp"

namespace vscard::card {

struct ReaderEvent {
    enum class Kind {
        ReaderAdded,
        ReaderRemoved,
        CardInserted,  // atr: the new card's ATR
        CardRemoved,
        // The card stayed in but pcscd's event counter for the reader moved (a reset or a quick
        // remove/insert of the same card): its session state is gone, drop caches. A card with
        // a different ATR is reported as CardRemoved + CardInserted instead.
        CardReset,
        ServiceLost,      // pcscd cannot be reached (reader empty)
        ServiceRestored,  // reachable again
    };
    Kind kind;
    std::string reader;  // empty for ServiceLost/ServiceRestored
    Bytes atr;
};

std::string_view to_string(ReaderEvent::Kind kind);

struct ReaderStatus {
    std::string reader;
    bool card_present = false;
    Bytes atr;
    std::uint32_t event_counter = 0;  // pcscd's count of card events in this reader
};

// What the monitor knows of one reader. track_reader() is the state machine behind the
// events, kept apart from the thread so that it can be tested on its own.
struct ReaderTrack {
    bool initialised = false;  // its state was read at least once
    bool gone = false;         // pcscd reported it unknown; kept until the list drops it
    bool present = false;
    Bytes atr;
    std::uint32_t counter = 0;  // pcscd's event counter (high word of the state)
    unsigned long current = 0;  // dwCurrentState for the next wait (SCARD_STATE_UNAWARE first)
};

// Folds one SCardGetStatusChange answer for reader NAME (its dwEventState and ATR) into TRACK
// and appends the events it means. A mute card counts as absent.
void track_reader(const std::string& name, ReaderTrack& track, unsigned long event_state,
                  const Bytes& atr, std::vector<ReaderEvent>& events);

struct ReaderMonitorOptions {
    std::chrono::milliseconds poll{1000};         // longest single SCardGetStatusChange
    std::chrono::milliseconds min_backoff{50};    // first retry after pcscd went away
    std::chrono::milliseconds max_backoff{1000};  // retries never wait longer than this
};

class ReaderMonitor {
public:
    // CALLBACK runs on the monitor's thread, one event at a time, in order; an exception from
    // it is logged and ignored. It may call readers() but must not destroy the monitor.
    using Callback = std::function<void(const ReaderEvent&)>;

    explicit ReaderMonitor(Callback callback, ReaderMonitorOptions options = {});
    ~ReaderMonitor();
    ReaderMonitor(const ReaderMonitor&) = delete;
    ReaderMonitor& operator=(const ReaderMonitor&) = delete;

    // The readers as last reported.
    std::vector<ReaderStatus> readers() const;
    bool service_available() const { return service_ == Service::Up; }
    // Waits until the first look at pcscd is done (its readers and cards reported, or pcscd
    // found unreachable); false after TIMEOUT.
    bool wait_ready(std::chrono::milliseconds timeout) const;

private:
    enum class Service { Unknown, Up, Down };

    void run();
    bool pass(std::vector<ReaderEvent>& events);
    void sync_readers(const std::vector<std::string>& names, std::vector<ReaderEvent>& events);
    void lose_service(const std::string& why, std::vector<ReaderEvent>& events);
    void dispatch(std::vector<ReaderEvent>& events);
    void set_ready();
    void sleep(std::chrono::milliseconds duration);

    Callback callback_;
    ReaderMonitorOptions options_;
    std::unique_ptr<Context> context_;    // the thread's only
    std::atomic<long> cancel_handle_{0};  // context_'s handle, for SCardCancel from outside
    std::atomic<Service> service_{Service::Unknown};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> exited_{false};
    mutable std::mutex mutex_;  // known_ (written by the thread only), ready_
    mutable std::condition_variable cv_;
    bool ready_ = false;
    std::map<std::string, ReaderTrack> known_;
    std::thread thread_;  // last: starts once the rest is initialised
};

}  // namespace vscard::card
