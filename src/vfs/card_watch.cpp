#include "vfs/card_watch.hpp"

#include "card/pcsc.hpp"
#include "log.hpp"

namespace vscard {
namespace {

// A card that stops answering must not hold a file operation forever.
constexpr std::chrono::seconds kCardTimeout{20};

}  // namespace

CardWatch::CardWatch(Callbacks callbacks) : callbacks_(std::move(callbacks)) {
    card::ReaderMonitorOptions options;
    options.poll = std::chrono::milliseconds(500);
    monitor_ = std::make_unique<card::ReaderMonitor>(
        [this](const card::ReaderEvent& e) { on_event(e); }, options);
    // The cards already inserted show before the mount answers its first call.
    monitor_->wait_ready(std::chrono::seconds(5));
}

CardWatch::~CardWatch() {
    monitor_.reset();
}

void CardWatch::on_event(const card::ReaderEvent& event) {
    using Kind = card::ReaderEvent::Kind;
    switch (event.kind) {
        case Kind::CardInserted: {
            try {
                card::CardOptions options;
                options.timeout = kCardTimeout;
                auto connection = std::make_unique<card::Card>(event.reader, options);
                auto session = std::make_shared<CardSession>(pcsc_channel(std::move(connection)),
                                                             event.reader, event.atr);
                log_line("card " + session->serial() + " inserted in '" + event.reader + "'" +
                         (session->has_app() ? "" : " (" + session->app_problem() + ")"));
                callbacks_.inserted(std::move(session));
            } catch (const Error& e) {
                log_line("cannot use the card in '" + event.reader + "': " + e.what());
            }
            return;
        }
        case Kind::CardRemoved:
        case Kind::ReaderRemoved:
            callbacks_.removed(event.reader);
            return;
        case Kind::ServiceLost:
            log_line("pcscd cannot be reached; cards show again when it is back");
            return;
        case Kind::ServiceRestored:
            log_line("pcscd is back");
            return;
        case Kind::ReaderAdded:
        case Kind::CardReset:
            // A reset is noticed by the session itself at its next command.
            return;
    }
}

}  // namespace vscard
