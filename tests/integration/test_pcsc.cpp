// The pcsc-lite client layer (src/card/pcsc.*, reader_monitor.*) against a private pcscd with
// vpcd readers and vscard-emu cards (DESIGN §9): readers, APDUs over T=1 and T=0, extended
// length, hotplug timing, several cards, removal and reset mid-sequence, pcscd restarts,
// transactions, timeouts and cancellation.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>

#include "card/apdu.hpp"
#include "card/emulator.hpp"
#include "card/pcsc.hpp"
#include "card/reader_monitor.hpp"
#include "error.hpp"
#include "harness.hpp"
#include "pcsc_rig.hpp"

namespace vscard::test {
namespace {

using card::Card;
using card::CardOptions;
using card::CommandApdu;
using card::ReaderEvent;
using card::ReaderMonitor;
using card::ResponseApdu;
using Clock = std::chrono::steady_clock;
using Kind = ReaderEvent::Kind;

#define SKIP_WITHOUT_PCSC()                                          \
    do {                                                             \
        if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why; \
    } while (0)

// pcsc-lite reads PCSCLITE_CSOCK_NAME once per process, but each test has a rig (and a socket)
// of its own: the variable names a symlink that each test points at its rig's socket.
std::filesystem::path client_socket() {
    // Made once per process, removed at exit.
    struct Dir {
        std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("vscard-pcsc-client." + std::to_string(::getpid()));
        ~Dir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    };
    static const Dir dir;
    static const std::filesystem::path link = [] {
        std::filesystem::create_directories(dir.path);
        auto path = dir.path / "pcscd.comm";
        // Read here once by pcsc-lite, then dropped: the programs other tests start must not
        // inherit a socket of this test's making.
        ::setenv("PCSCLITE_CSOCK_NAME", path.c_str(), 1);
        try {
            card::Context probe;
        } catch (const Error&) {
        }
        ::unsetenv("PCSCLITE_CSOCK_NAME");
        return path;
    }();
    return link;
}

void point_client_at(const std::filesystem::path& target) {
    auto link = client_socket();
    auto tmp = link.parent_path() / "next";
    std::filesystem::remove(tmp);
    std::filesystem::create_symlink(target, tmp);
    std::filesystem::rename(tmp, link);  // atomic: a client never sees no link
}

// A rig whose pcscd this process's PC/SC calls reach.
struct Rig : PcscRig {
    Rig() { point_client_at(socket()); }
};

// Events from a monitor, with the time each arrived.
class EventLog {
public:
    void operator()(const ReaderEvent& e) {
        std::unique_lock lock(mutex_);
        events_.push_back({e, Clock::now()});
        cv_.notify_all();
        if (stall_ && e.kind == stall_->first && e.reader == stall_->second) {
            stall_.reset();
            lock.unlock();
            std::this_thread::sleep_for(stall_for_);  // keeps the monitor out of its wait
        }
    }
    // The next event KIND for READER holds the monitor's thread for DURATION.
    void stall_on(Kind kind, const std::string& reader, std::chrono::milliseconds duration) {
        std::lock_guard lock(mutex_);
        stall_ = {kind, reader};
        stall_for_ = duration;
    }
    // Waits for the first event of KIND (for READER, if given) after position FROM; returns
    // its arrival time, or nullopt after TIMEOUT.
    std::optional<Clock::time_point> wait(Kind kind, const std::string& reader = {},
                                          std::chrono::milliseconds timeout = 5s,
                                          Bytes* atr = nullptr) {
        std::unique_lock lock(mutex_);
        std::optional<Clock::time_point> found;
        cv_.wait_for(lock, timeout, [&] {
            for (std::size_t i = consumed_; i < events_.size(); ++i) {
                const auto& [e, t] = events_[i];
                if (e.kind == kind && (reader.empty() || e.reader == reader)) {
                    consumed_ = i + 1;
                    found = t;
                    if (atr) *atr = e.atr;
                    return true;
                }
            }
            return false;
        });
        return found;
    }
    std::size_t count(Kind kind) {
        std::lock_guard lock(mutex_);
        return std::count_if(events_.begin(), events_.end(),
                             [&](const auto& p) { return p.first.kind == kind; });
    }
    std::string dump() {
        std::lock_guard lock(mutex_);
        std::string out;
        for (const auto& [e, t] : events_)
            out += std::string(card::to_string(e.kind)) + " " + e.reader + "\n";
        return out;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<ReaderEvent, Clock::time_point>> events_;
    std::size_t consumed_ = 0;
    std::optional<std::pair<Kind, std::string>> stall_;
    std::chrono::milliseconds stall_for_{0};
};

// Creates EF FID with CONTENT in the MF of the card behind CARD.
void make_ef(Card& c, std::uint16_t fid, const Bytes& content) {
    auto hi = static_cast<std::uint8_t>(fid >> 8), lo = static_cast<std::uint8_t>(fid);
    auto sz = content.size();
    ASSERT_EQ(c.exchange(CommandApdu(0x00, 0xA4, 0x00, 0x0C, {0x3F, 0x00})).sw, 0x9000);
    Bytes fcp{0x62,
              0x0B,
              0x83,
              0x02,
              hi,
              lo,
              0x82,
              0x01,
              0x01,
              0x80,
              0x02,
              static_cast<std::uint8_t>(sz >> 8),
              static_cast<std::uint8_t>(sz)};
    ASSERT_EQ(c.exchange(CommandApdu(0x00, 0xE0, 0x00, 0x00, fcp)).sw, 0x9000);
    ASSERT_EQ(c.exchange(CommandApdu(0x00, 0xD6, 0x00, 0x00, content)).sw, 0x9000);
}

Bytes pattern(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return b;
}

ResponseApdu select_mf(Card& c) {
    return c.exchange(CommandApdu(0x00, 0xA4, 0x00, 0x00, {0x3F, 0x00}, 256));
}

ResponseApdu read_ef(Card& c, std::uint16_t fid, std::size_t n) {
    auto r = c.exchange(
        CommandApdu(0x00, 0xA4, 0x02, 0x0C,
                    {static_cast<std::uint8_t>(fid >> 8), static_cast<std::uint8_t>(fid)}));
    if (!r.ok()) return r;
    return c.exchange(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, n));
}

double ms(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

template <typename F>
ErrorKind error_kind_of(F&& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const Error& e) {
        if (message) *message = e.what();
        return e.kind();
    }
    ADD_FAILURE() << "no error";
    return ErrorKind::Usage;
}

TEST(Pcsc, ListsTheReadersOfThePrivatePcscd) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    auto readers = card::list_readers();
    ASSERT_EQ(readers.size(), 2u);
    EXPECT_EQ(readers[0], rig.reader(0));
    EXPECT_EQ(readers[1], rig.reader(1));
    card::Context context;
    EXPECT_TRUE(context.valid());
    EXPECT_EQ(context.list_readers(), readers);
}

TEST(Pcsc, NoPcscdIsUnavailableWithAdvice) {
    TempDir dir;
    point_client_at(dir / "no-such.socket");
    std::string message;
    EXPECT_EQ(error_kind_of([] { card::list_readers(); }, &message), ErrorKind::Unavailable);
    EXPECT_NE(message.find("pcscd"), std::string::npos) << message;
    EXPECT_NE(message.find("systemctl start pcscd.socket"), std::string::npos) << message;
    EXPECT_EQ(error_kind_of([] { Card c("Test PCD 00 00"); }), ErrorKind::Unavailable);
}

TEST(Pcsc, ConnectErrorsNameTheReader) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    std::string message;
    EXPECT_EQ(error_kind_of([] { Card c("No Such Reader 00 00"); }, &message), ErrorKind::NotFound);
    EXPECT_NE(message.find("No Such Reader 00 00"), std::string::npos) << message;
    EXPECT_EQ(error_kind_of([&] { Card c(rig.reader(0)); }, &message), ErrorKind::NotFound);
    EXPECT_NE(message.find("no card in reader 'Test PCD 00 00'"), std::string::npos) << message;
}

TEST(Pcsc, SelectAndReadBinaryOverT1) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    card::ApduLog log;
    log.enable();
    CardOptions options;
    options.log = &log;
    Card c(rig.reader(0), options);
    EXPECT_EQ(c.protocol(), card::Protocol::T1);  // pcsc-lite prefers T=1 of the two offered
    EXPECT_EQ(c.atr(), card::emulator_atr({}));
    EXPECT_TRUE(c.extended_length());
    EXPECT_EQ(c.reader(), rig.reader(0));
    EXPECT_EQ(c.id(), card::stable_card_id(rig.reader(0), card::emulator_atr({})));
    EXPECT_TRUE(c.usable());

    auto fci = select_mf(c);
    EXPECT_EQ(fci.sw, 0x9000);
    EXPECT_EQ(fci.data.at(0), 0x6F);  // FCI template
    make_ef(c, 0x1001, pattern(300));
    auto r = read_ef(c, 0x1001, 300);
    EXPECT_EQ(r.sw, 0x9000);
    EXPECT_EQ(r.data, pattern(300));

    // Every APDU went through the log, PIN data withheld.
    auto before = log.commands();
    EXPECT_EQ(c.exchange(CommandApdu(0x00, 0x20, 0x00, 0x81, {'1', '2', '3', '4'})).sw, 0x6A88);
    EXPECT_EQ(log.commands(), before + 1);
    auto lines = log.lines();
    EXPECT_NE(lines.at(lines.size() - 2).find("[PIN data withheld]"), std::string::npos);
    for (const auto& line : lines) EXPECT_EQ(line.find("31 32 33 34"), std::string::npos) << line;
}

TEST(Pcsc, T0ProtocolAndGetResponse) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    // --t0: every response announced with 61xx and fetched with GET RESPONSE. The card is
    // awaited through the monitor: the rig's own check (opensc-tool) would connect first and
    // settle the protocol on T=1 until the next reset.
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    rig.start_card(0, rig.dir() / "card.img", {"--t0"}, /*wait=*/false);
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s)) << events.dump();
    card::ApduLog log;
    CardOptions options;
    options.t1 = false;  // T=0 only: the SCARD_PCI_T0 request
    options.log = &log;
    Card c(rig.reader(0), options);
    EXPECT_EQ(c.protocol(), card::Protocol::T0);
    make_ef(c, 0x1002, pattern(200));
    auto before = log.commands();
    auto r = read_ef(c, 0x1002, 200);
    EXPECT_EQ(r.sw, 0x9000);
    EXPECT_EQ(r.data, pattern(200));
    EXPECT_EQ(log.commands() - before, 3u);  // SELECT, READ BINARY (61C8), GET RESPONSE
    auto fci = select_mf(c);
    EXPECT_EQ(fci.sw, 0x9000);
    EXPECT_EQ(fci.data.at(0), 0x6F);

    // While the card runs T=0, a connection that insists on T=1 is refused clearly.
    std::string message;
    CardOptions t1_only;
    t1_only.t0 = false;
    EXPECT_EQ(error_kind_of([&] { Card other(rig.reader(0), t1_only); }, &message),
              ErrorKind::NotSupported);
    EXPECT_NE(message.find("SCARD_E_PROTO_MISMATCH"), std::string::npos) << message;
}

TEST(Pcsc, ExtendedLengthWhenTheCardHasIt) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "a.img");
    rig.start_card(1, rig.dir() / "b.img", {"--no-extended"});
    card::ApduLog log;
    CardOptions options;
    options.log = &log;
    Card a(rig.reader(0), options);
    ASSERT_TRUE(a.extended_length());
    const Bytes big = pattern(4000);
    make_ef(a, 0x1003, big);  // UPDATE BINARY of 4000 bytes in one extended APDU
    auto before = log.commands();
    auto r = read_ef(a, 0x1003, big.size());
    EXPECT_EQ(r.sw, 0x9000);
    EXPECT_EQ(r.data, big);
    EXPECT_EQ(log.commands() - before, 2u);  // SELECT and one READ BINARY

    Card b(rig.reader(1));
    EXPECT_FALSE(b.extended_length());
    EXPECT_FALSE(b.exchange_options().extended);
    make_ef(b, 0x1003, pattern(600));  // chained: the card has no extended length
    r = read_ef(b, 0x1003, 256);
    EXPECT_EQ(r.sw, 0x9000);
    const Bytes content = pattern(600);
    EXPECT_EQ(r.data, Bytes(content.begin(), content.begin() + 256));
}

TEST(Pcsc, MonitorSeesInsertionAndRemovalWithinTwoSeconds) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(monitor.wait_ready(5s));
    EXPECT_TRUE(monitor.service_available());
    EXPECT_TRUE(events.wait(Kind::ReaderAdded, rig.reader(0), 1s));
    EXPECT_TRUE(events.wait(Kind::ReaderAdded, rig.reader(1), 1s));
    EXPECT_EQ(events.count(Kind::CardInserted), 0u);

    rig.start_card(0, rig.dir() / "card.img", {}, /*wait=*/false);
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s)) << events.dump();
    for (int round = 0; round < 2; ++round) {
        auto t0 = Clock::now();
        ASSERT_EQ(rig.control(0, "remove"), "ok removed");
        auto removed = events.wait(Kind::CardRemoved, rig.reader(0), 5s);
        ASSERT_TRUE(removed) << events.dump();
        auto t1 = Clock::now();
        ASSERT_EQ(rig.control(0, "insert"), "ok inserted");
        Bytes atr;
        auto inserted = events.wait(Kind::CardInserted, rig.reader(0), 5s, &atr);
        ASSERT_TRUE(inserted) << events.dump();
        EXPECT_EQ(atr, card::emulator_atr({}));
        std::cout << "[ latency  ] removal " << ms(*removed - t0) << " ms, insertion "
                  << ms(*inserted - t1) << " ms\n";
        EXPECT_LT(*removed - t0, 2s);
        EXPECT_LT(*inserted - t1, 2s);
    }
    auto list = monitor.readers();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_TRUE(list[0].card_present);
    EXPECT_EQ(list[0].atr, card::emulator_atr({}));
    EXPECT_FALSE(list[1].card_present);
}

TEST(Pcsc, MonitorStopsPromptly) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    EventLog events;
    auto monitor = std::make_unique<ReaderMonitor>(std::ref(events));
    ASSERT_TRUE(monitor->wait_ready(5s));
    std::this_thread::sleep_for(100ms);  // inside SCardGetStatusChange by now
    auto t0 = Clock::now();
    monitor.reset();
    auto took = Clock::now() - t0;
    std::cout << "[ latency  ] monitor stopped in " << ms(took) << " ms\n";
    EXPECT_LT(took, 1s);
}

TEST(Pcsc, TwoReadersAndCardsAtOnce) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(monitor.wait_ready(5s));
    rig.start_card(0, rig.dir() / "a.img");
    rig.start_card(1, rig.dir() / "b.img");
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s)) << events.dump();
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(1), 5s)) << events.dump();

    Card a(rig.reader(0));
    Card b(rig.reader(1));
    make_ef(a, 0x1001, pattern(100));
    make_ef(b, 0x1001, pattern(50));
    // Both cards busy from two threads at once.
    auto worker = [](Card& c, std::size_t n) {
        for (int i = 0; i < 20; ++i) {
            auto r = read_ef(c, 0x1001, n);
            if (!r.ok() || r.data != pattern(n)) return false;
        }
        return true;
    };
    auto fa = std::async(std::launch::async, worker, std::ref(a), 100);
    auto fb = std::async(std::launch::async, worker, std::ref(b), 50);
    EXPECT_TRUE(fa.get());
    EXPECT_TRUE(fb.get());
    auto serial_a = a.exchange(CommandApdu(0x00, 0xCA, 0x01, 0x01, {}, 256)).data;
    auto serial_b = b.exchange(CommandApdu(0x00, 0xCA, 0x01, 0x01, {}, 256)).data;
    EXPECT_NE(serial_a, serial_b);
    EXPECT_NE(a.id(), b.id());  // same ATR, different readers

    // Taking one card out leaves the other alone.
    ASSERT_EQ(rig.control(1, "remove"), "ok removed");
    ASSERT_TRUE(events.wait(Kind::CardRemoved, rig.reader(1), 3s)) << events.dump();
    EXPECT_TRUE(worker(a, 100));
    EXPECT_EQ(error_kind_of([&] { read_ef(b, 0x1001, 50); }), ErrorKind::Io);
}

TEST(Pcsc, RemovalMidSequenceFailsCleanlyUntilReconnect) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    Card c(rig.reader(0));
    make_ef(c, 0x1001, pattern(1000));
    std::atomic<int> done{0};
    auto reader = std::async(std::launch::async, [&]() -> std::string {
        for (;;) {
            try {
                auto r = read_ef(c, 0x1001, 1000);
                if (!r.ok()) return "status " + card::sw_hex(r.sw);
                ++done;
            } catch (const Error& e) {
                return std::string(e.kind() == ErrorKind::Io ? "Io: " : "other: ") + e.what();
            }
        }
    });
    ASSERT_TRUE(wait_until([&] { return done > 5; }, 5s));
    auto t0 = Clock::now();
    ASSERT_EQ(rig.control(0, "remove"), "ok removed");
    ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
    std::string outcome = reader.get();
    EXPECT_EQ(outcome.rfind("Io: ", 0), 0u) << outcome;
    EXPECT_NE(outcome.find("removed"), std::string::npos) << outcome;
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_FALSE(c.usable());

    // Later calls keep failing at once, also once the card is back...
    for (int i = 0; i < 3; ++i) {
        auto t = Clock::now();
        std::string message;
        EXPECT_EQ(error_kind_of([&] { select_mf(c); }, &message), ErrorKind::Io);
        EXPECT_NE(message.find("removed"), std::string::npos) << message;
        EXPECT_LT(Clock::now() - t, 100ms);
    }
    ASSERT_EQ(rig.control(0, "insert"), "ok inserted");
    ASSERT_TRUE(rig.wait_card(0, true));
    EXPECT_EQ(error_kind_of([&] { select_mf(c); }), ErrorKind::Io);
    // ...until reconnect.
    auto resets = c.resets();
    c.reconnect();
    EXPECT_GT(c.resets(), resets);
    EXPECT_TRUE(c.usable());
    EXPECT_EQ(read_ef(c, 0x1001, 1000).data, pattern(1000));
}

TEST(Pcsc, CardResetIsDetectedAndTheConnectionRecovers) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s));

    Card a(rig.reader(0));
    Card other(rig.reader(0));
    make_ef(a, 0x1001, pattern(20));
    EXPECT_EQ(a.exchange(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 20)).data, pattern(20));
    EXPECT_EQ(a.resets(), 0u);

    other.reconnect(/*reset_card=*/true);  // another program resets the card
    EXPECT_EQ(other.resets(), 1u);
    // The command after the reset is not sent: the selected EF is gone with the reset.
    EXPECT_THROW(a.exchange(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 20)), card::CardReset);
    EXPECT_EQ(a.resets(), 1u);
    EXPECT_TRUE(a.usable());
    EXPECT_EQ(a.exchange(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 20)).sw, 0x6986);  // no EF
    EXPECT_EQ(read_ef(a, 0x1001, 20).data, pattern(20));

    // A reset noticed when a transaction starts is recovered from without an error.
    other.reconnect(true);
    {
        card::Transaction t(a);
        EXPECT_EQ(a.resets(), 2u);
        EXPECT_EQ(read_ef(a, 0x1001, 20).data, pattern(20));
    }
    // pcscd does not count a reset made through SCardReconnect as a card event, so the
    // monitor cannot see it (the connections do, above); the card stays "inserted".
    EXPECT_EQ(events.count(Kind::CardRemoved), 0u) << events.dump();
}

// Out and in again while the monitor was busy elsewhere: the card is still present at the
// next look, but pcscd's event counter moved, so its session is reported gone.
TEST(Pcsc, MonitorReportsAQuickReinsertionAsReset) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "a.img");
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s));
    events.stall_on(Kind::CardInserted, rig.reader(1), 2500ms);
    rig.start_card(1, rig.dir() / "b.img", {}, /*wait=*/false);
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(1), 5s)) << events.dump();
    ASSERT_EQ(rig.control(0, "remove"), "ok removed");
    std::this_thread::sleep_for(900ms);  // pcscd polls the reader every 400 ms
    ASSERT_EQ(rig.control(0, "insert"), "ok inserted");
    Bytes atr;
    ASSERT_TRUE(events.wait(Kind::CardReset, rig.reader(0), 5s, &atr)) << events.dump();
    EXPECT_EQ(atr, card::emulator_atr({}));
    EXPECT_EQ(events.count(Kind::CardRemoved), 0u) << events.dump();
}

TEST(Pcsc, PcscdRestartIsSurvived) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 5s));
    Card c(rig.reader(0));
    EXPECT_EQ(select_mf(c).sw, 0x9000);

    rig.restart_pcscd();
    ASSERT_TRUE(events.wait(Kind::CardRemoved, rig.reader(0), 5s)) << events.dump();
    EXPECT_TRUE(events.wait(Kind::ReaderRemoved, rig.reader(0), 1s)) << events.dump();
    EXPECT_TRUE(events.wait(Kind::ServiceLost, {}, 1s)) << events.dump();
    EXPECT_TRUE(events.wait(Kind::ServiceRestored, {}, 5s)) << events.dump();
    EXPECT_TRUE(events.wait(Kind::ReaderAdded, rig.reader(0), 5s)) << events.dump();
    ASSERT_TRUE(events.wait(Kind::CardInserted, rig.reader(0), 10s)) << events.dump();
    EXPECT_TRUE(monitor.service_available());
    ASSERT_EQ(monitor.readers().size(), 2u);

    // The old connection fails cleanly, reconnect() re-establishes the context.
    EXPECT_EQ(error_kind_of([&] { select_mf(c); }), ErrorKind::Io);
    EXPECT_FALSE(c.usable());
    c.reconnect();
    EXPECT_EQ(select_mf(c).sw, 0x9000);
    Card fresh(rig.reader(0));
    EXPECT_EQ(select_mf(fresh).sw, 0x9000);
    EXPECT_EQ(card::list_readers().size(), 2u);
}

TEST(Pcsc, MonitorWaitsForPcscdAndReconnects) {
    SKIP_WITHOUT_PCSC();
    TempDir nowhere;
    point_client_at(nowhere / "pcscd.comm");
    EventLog events;
    ReaderMonitor monitor(std::ref(events));
    ASSERT_TRUE(events.wait(Kind::ServiceLost, {}, 3s)) << events.dump();
    EXPECT_FALSE(monitor.service_available());
    Rig rig;  // pcscd appears: the monitor finds it within its backoff (<= 1 s)
    auto t0 = Clock::now();
    ASSERT_TRUE(events.wait(Kind::ServiceRestored, {}, 3s)) << events.dump();
    EXPECT_LT(Clock::now() - t0, 2s);  // backoff at most 1 s
    EXPECT_TRUE(events.wait(Kind::ReaderAdded, rig.reader(0), 2s)) << events.dump();
}

// pcsc-lite semantics: while one connection holds a transaction, another connection's
// SCardTransmit waits (pcsc-lite polls every 100 ms) until the transaction ends.
TEST(Pcsc, TransmitWaitsForAnotherConnectionsTransaction) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    Card a(rig.reader(0));
    Card b(rig.reader(0));
    std::future<Clock::time_point> waiter;
    Clock::time_point ended;
    {
        card::Transaction t(a);
        EXPECT_EQ(select_mf(a).sw, 0x9000);
        waiter = std::async(std::launch::async, [&] {
            EXPECT_EQ(select_mf(b).sw, 0x9000);
            return Clock::now();
        });
        EXPECT_EQ(waiter.wait_for(400ms), std::future_status::timeout);  // b waits
        EXPECT_EQ(select_mf(a).sw, 0x9000);                              // a carries on
        ended = Clock::now();
    }
    ASSERT_EQ(waiter.wait_for(3s), std::future_status::ready);
    auto done = waiter.get();
    EXPECT_GE(done, ended);
    EXPECT_LT(done - ended, 1s);
}

TEST(Pcsc, TransactionKeepsOtherThreadsOut) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    Card c(rig.reader(0));
    make_ef(c, 0x1001, pattern(10));
    std::atomic<bool> other_ran{false};
    std::future<void> other;
    {
        card::Transaction t(c);
        card::Transaction nested(c);  // same thread: allowed
        other = std::async(std::launch::async, [&] {
            select_mf(c);  // would change the current file under the transaction
            other_ran = true;
        });
        std::this_thread::sleep_for(200ms);
        EXPECT_FALSE(other_ran);
        EXPECT_EQ(read_ef(c, 0x1001, 10).data, pattern(10));
        EXPECT_EQ(c.exchange(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 10)).data, pattern(10));
    }
    other.get();
    EXPECT_TRUE(other_ran);
}

TEST(Pcsc, CancelAndTimeoutEndAWait) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    Card holder(rig.reader(0));
    Card waiting(rig.reader(0));
    CardOptions quick;
    quick.timeout = 300ms;
    Card impatient(rig.reader(0), quick);
    card::Transaction t(holder);

    auto blocked = std::async(std::launch::async, [&] {
        std::string message;
        auto kind = error_kind_of([&] { select_mf(waiting); }, &message);
        return std::make_pair(kind, message);
    });
    EXPECT_EQ(blocked.wait_for(300ms), std::future_status::timeout);
    auto t0 = Clock::now();
    waiting.cancel();
    ASSERT_EQ(blocked.wait_for(3s), std::future_status::ready);
    EXPECT_LT(Clock::now() - t0, 3s);  // about 100 ms: the next poll of pcsc-lite's wait
    auto [kind, message] = blocked.get();
    EXPECT_EQ(kind, ErrorKind::Io);
    EXPECT_NE(message.find("cancelled"), std::string::npos) << message;
    EXPECT_FALSE(waiting.usable());

    t0 = Clock::now();
    EXPECT_EQ(error_kind_of([&] { select_mf(impatient); }, &message), ErrorKind::Busy);
    EXPECT_NE(message.find("300 ms"), std::string::npos) << message;
    EXPECT_LT(Clock::now() - t0, 3s);  // about 300 ms; generous for a loaded machine
    EXPECT_EQ(error_kind_of([&] { select_mf(impatient); }), ErrorKind::Busy);
}

TEST(Pcsc, ReconnectAfterCancelOrTimeout) {
    SKIP_WITHOUT_PCSC();
    Rig rig;
    rig.start_card(0, rig.dir() / "card.img");
    CardOptions quick;
    quick.timeout = 300ms;
    Card c(rig.reader(0), quick);
    c.cancel();
    EXPECT_EQ(error_kind_of([&] { select_mf(c); }), ErrorKind::Io);
    c.reconnect();
    EXPECT_EQ(select_mf(c).sw, 0x9000);  // a normal command is well within the timeout
}

}  // namespace
}  // namespace vscard::test
