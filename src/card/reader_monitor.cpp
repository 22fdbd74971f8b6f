#include "card/reader_monitor.hpp"

#include <PCSC/winscard.h>

#include <algorithm>
#include <set>

#include "error.hpp"
#include "log.hpp"

namespace vscard::card {

namespace {

using namespace std::chrono_literals;

const char* const kPnpReader = "\\\\?PnP?\\Notification";

}  // namespace

std::string_view to_string(ReaderEvent::Kind kind) {
    switch (kind) {
        case ReaderEvent::Kind::ReaderAdded:
            return "reader added";
        case ReaderEvent::Kind::ReaderRemoved:
            return "reader removed";
        case ReaderEvent::Kind::CardInserted:
            return "card inserted";
        case ReaderEvent::Kind::CardRemoved:
            return "card removed";
        case ReaderEvent::Kind::CardReset:
            return "card reset";
        case ReaderEvent::Kind::ServiceLost:
            return "pcscd lost";
        case ReaderEvent::Kind::ServiceRestored:
            return "pcscd back";
    }
    return "?";
}

ReaderMonitor::ReaderMonitor(Callback callback, ReaderMonitorOptions options)
    : callback_(std::move(callback)), options_(options), thread_([this] { run(); }) {}

ReaderMonitor::~ReaderMonitor() {
    stopping_ = true;
    {
        std::lock_guard lock(mutex_);
        cv_.notify_all();
    }
    // SCardCancel only reaches a wait already under way: repeat until the thread is out.
    while (!exited_) {
        if (long h = cancel_handle_.load()) SCardCancel(h);
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, 20ms, [&] { return exited_.load(); });
    }
    thread_.join();
}

std::vector<ReaderStatus> ReaderMonitor::readers() const {
    std::lock_guard lock(mutex_);
    std::vector<ReaderStatus> list;
    for (const auto& [name, k] : known_) {
        if (k.gone || !k.initialised) continue;
        list.push_back({name, k.present, k.present ? k.atr : Bytes{}, k.counter});
    }
    return list;
}

bool ReaderMonitor::wait_ready(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return ready_; });
}

void ReaderMonitor::set_ready() {
    std::lock_guard lock(mutex_);
    if (!ready_) {
        ready_ = true;
        cv_.notify_all();
    }
}

void ReaderMonitor::sleep(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, duration, [&] { return stopping_.load(); });
}

void ReaderMonitor::dispatch(std::vector<ReaderEvent>& events) {
    for (const auto& e : events) {
        if (stopping_) break;
        try {
            if (callback_) callback_(e);
        } catch (const std::exception& ex) {
            log_line("reader monitor: the handler of '" + std::string(to_string(e.kind)) +
                     "' for '" + e.reader + "' failed: " + ex.what());
        }
    }
    events.clear();
}

void ReaderMonitor::run() {
    auto backoff = options_.min_backoff;
    std::vector<ReaderEvent> events;
    while (!stopping_) {
        bool ok = false;
        try {
            ok = pass(events);
        } catch (const std::exception& e) {
            // An unexpected failure must not end the monitoring: start over with a new context.
            lose_service(e.what(), events);
        }
        dispatch(events);
        if (ok) {
            backoff = options_.min_backoff;
        } else {
            sleep(backoff);
            backoff = std::min(backoff * 2, options_.max_backoff);
        }
    }
    cancel_handle_ = 0;
    context_.reset();
    {
        std::lock_guard lock(mutex_);
        exited_ = true;
        cv_.notify_all();
    }
}

// One round: (re)connect, list the readers, wait for a change, report it. False when the
// caller should back off before the next round.
bool ReaderMonitor::pass(std::vector<ReaderEvent>& events) {
    if (!context_) {
        try {
            context_ = std::make_unique<Context>();
        } catch (const Error& e) {
            lose_service(e.what(), events);
            set_ready();
            return false;
        }
        cancel_handle_ = context_->handle();
    }
    std::vector<std::string> names;
    long rv = list_reader_names(context_->handle(), names);
    if (rv != SCARD_S_SUCCESS) {
        lose_service(pcsc_error(rv, "cannot list the readers").what(), events);
        return false;
    }
    if (service_.exchange(Service::Up) == Service::Down) {
        log_line("pcscd is reachable again");
        events.push_back({ReaderEvent::Kind::ServiceRestored, {}, {}});
    }
    sync_readers(names, events);
    dispatch(events);
    if (stopping_) return true;

    // The wait: every listed reader with the state we know (UNAWARE for a new one, which
    // answers at once) and the PnP pseudo-reader for readers coming and going meanwhile.
    std::vector<SCARD_READERSTATE> states;
    std::vector<std::string> order;
    bool fresh = false;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, k] : known_) {
            order.push_back(name);
            fresh = fresh || !k.initialised;
        }
    }
    states.resize(order.size() + 1);
    for (std::size_t i = 0; i < order.size(); ++i) {
        states[i].szReader = order[i].c_str();
        std::lock_guard lock(mutex_);
        states[i].dwCurrentState = known_[order[i]].current;
    }
    states.back().szReader = kPnpReader;
    states.back().dwCurrentState = SCARD_STATE_UNAWARE;
    if (!fresh) set_ready();

    rv = SCardGetStatusChange(context_->handle(), static_cast<DWORD>(options_.poll.count()),
                              states.data(), static_cast<DWORD>(states.size()));
    switch (rv) {
        case SCARD_S_SUCCESS:
            break;
        case SCARD_E_TIMEOUT:
        case SCARD_E_CANCELLED:
        case SCARD_E_UNKNOWN_READER:  // a reader left between the list and the wait
            return true;
        case SCARD_E_NO_READERS_AVAILABLE:
            set_ready();
            return false;  // nothing to wait on: look again shortly
        default:
            if (pcsc_service_lost(rv) || rv == SCARD_E_INVALID_HANDLE) {
                lose_service(pcsc_error(rv, "lost pcscd while watching the readers").what(),
                             events);
                return true;  // reconnect at once: pcscd may already be back
            }
            log_line(pcsc_error(rv, "cannot watch the readers").what());
            return false;
    }
    {
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i + 1 < states.size(); ++i) {
            const SCARD_READERSTATE& s = states[i];
            auto it = known_.find(order[i]);
            if (it == known_.end() || !(s.dwEventState & SCARD_STATE_CHANGED)) continue;
            Bytes atr(s.rgbAtr, s.rgbAtr + std::min<DWORD>(s.cbAtr, MAX_ATR_SIZE));
            track_reader(order[i], it->second, s.dwEventState, atr, events);
        }
    }
    dispatch(events);
    set_ready();
    return true;
}

void ReaderMonitor::sync_readers(const std::vector<std::string>& names,
                                 std::vector<ReaderEvent>& events) {
    std::set<std::string> listed(names.begin(), names.end());
    std::lock_guard lock(mutex_);
    for (auto it = known_.begin(); it != known_.end();) {
        if (listed.count(it->first)) {
            ++it;
            continue;
        }
        if (!it->second.gone) {
            if (it->second.present)
                events.push_back({ReaderEvent::Kind::CardRemoved, it->first, {}});
            events.push_back({ReaderEvent::Kind::ReaderRemoved, it->first, {}});
        }
        it = known_.erase(it);
    }
    for (const auto& name : names) {
        if (known_.count(name)) continue;
        known_[name] = ReaderTrack{};
        events.push_back({ReaderEvent::Kind::ReaderAdded, name, {}});
    }
}

void track_reader(const std::string& name, ReaderTrack& k, unsigned long event_state,
                  const Bytes& atr, std::vector<ReaderEvent>& events) {
    k.current = event_state & ~static_cast<unsigned long>(SCARD_STATE_CHANGED);
    if (event_state & SCARD_STATE_UNKNOWN) {  // the reader went away
        if (!k.gone) {
            if (k.present) events.push_back({ReaderEvent::Kind::CardRemoved, name, {}});
            events.push_back({ReaderEvent::Kind::ReaderRemoved, name, {}});
        }
        k.gone = true;
        k.present = false;
        k.initialised = false;
        return;
    }
    if (k.gone) {  // the same reader is back
        k.gone = false;
        events.push_back({ReaderEvent::Kind::ReaderAdded, name, {}});
    }
    // A mute card (present, no answer to reset) cannot be used: treated as absent.
    bool present = (event_state & SCARD_STATE_PRESENT) && !(event_state & SCARD_STATE_MUTE);
    auto counter = static_cast<std::uint32_t>((event_state >> 16) & 0xFFFF);
    if (!k.initialised || k.present != present) {
        if (k.initialised && k.present)
            events.push_back({ReaderEvent::Kind::CardRemoved, name, {}});
        if (present) events.push_back({ReaderEvent::Kind::CardInserted, name, atr});
    } else if (present && (counter != k.counter || atr != k.atr)) {
        // Still present, yet pcscd counted events meanwhile (out and in again between two
        // waits) or the ATR changed: the session the caller knew is gone either way.
        if (atr != k.atr) {
            events.push_back({ReaderEvent::Kind::CardRemoved, name, {}});
            events.push_back({ReaderEvent::Kind::CardInserted, name, atr});
        } else {
            events.push_back({ReaderEvent::Kind::CardReset, name, atr});
        }
    }
    k.initialised = true;
    k.present = present;
    k.atr = present ? atr : Bytes{};
    k.counter = counter;
}

void ReaderMonitor::lose_service(const std::string& why, std::vector<ReaderEvent>& events) {
    {
        std::lock_guard lock(mutex_);
        for (const auto& [name, k] : known_) {
            if (k.gone) continue;
            if (k.present) events.push_back({ReaderEvent::Kind::CardRemoved, name, {}});
            events.push_back({ReaderEvent::Kind::ReaderRemoved, name, {}});
        }
        known_.clear();
    }
    cancel_handle_ = 0;
    context_.reset();
    if (service_.exchange(Service::Down) != Service::Down) {
        log_line("pcscd is not reachable; waiting for it (" + why + ")");
        events.push_back({ReaderEvent::Kind::ServiceLost, {}, {}});
    }
}

}  // namespace vscard::card
