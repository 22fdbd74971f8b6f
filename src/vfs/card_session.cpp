#include "vfs/card_session.hpp"

#include "card/pcsc.hpp"
#include "log.hpp"

namespace vscard {
namespace {

class PcscChannel final : public CardChannel {
public:
    explicit PcscChannel(std::unique_ptr<card::Card> card) : card_(std::move(card)) {}
    card::Transmitter& link() override { return *card_; }
    std::shared_ptr<void> hold() override { return std::make_shared<card::Transaction>(*card_); }
    std::uint64_t resets() const override { return card_->resets(); }

private:
    std::unique_ptr<card::Card> card_;
};

}  // namespace

std::unique_ptr<CardChannel> pcsc_channel(std::unique_ptr<card::Card> card) {
    return std::make_unique<PcscChannel>(std::move(card));
}

CardSession::CardSession(std::unique_ptr<CardChannel> channel, std::string reader, Bytes atr,
                         card::ApduLog* log)
    : channel_(std::move(channel)),
      reader_(std::move(reader)),
      atr_(std::move(atr)),
      log_(log ? log : &own_log_) {
    serial_ = card::stable_card_id(reader_, atr_);
    std::lock_guard lock(mutex_);
    try {
        auto hold = begin();
        serial_ = app_->serial();
        label_ = app_->label();
        has_app_ = true;
    } catch (const Error& e) {
        // A card without our profile still shows (its id/ only); removal is not that.
        if (e.kind() == ErrorKind::Io || e.kind() == ErrorKind::Unavailable) throw;
        app_problem_ = e.what();
        app_.reset();
    }
}

CardSession::~CardSession() = default;

std::string CardSession::serial() const {
    std::lock_guard lock(mutex_);
    return serial_;
}

std::string CardSession::label() const {
    std::lock_guard lock(mutex_);
    return label_;
}

bool CardSession::has_app() const {
    std::lock_guard lock(mutex_);
    return has_app_;
}

std::string CardSession::app_problem() const {
    std::lock_guard lock(mutex_);
    return app_problem_;
}

bool CardSession::look_for_app(bool now_please) {
    std::lock_guard lock(mutex_);
    if (has_app_) return true;
    const auto now = std::chrono::steady_clock::now();
    if (removed_ || (!now_please && now - last_look_ < std::chrono::milliseconds(250)))
        return false;
    last_look_ = now;
    try {
        auto hold = channel_->hold();
        open_app();
        serial_ = app_->serial();
        label_ = app_->label();
        has_app_ = true;
        app_problem_.clear();
        return true;
    } catch (const Error&) {
        app_.reset();  // still blank (or gone): looked at again later
        return false;
    }
}

void CardSession::set_pin_source(std::shared_ptr<PinSource> pins) {
    std::lock_guard lock(mutex_);
    pins_ = std::move(pins);
}

void CardSession::gone() const {
    throw Error(ErrorKind::Io, "the card " + serial_ + " was removed from reader '" + reader_ +
                                   "'; insert it again");
}

bool CardSession::is_removed() const {
    std::lock_guard lock(mutex_);
    return removed_;
}

void CardSession::open_app() {
    app_.reset();
    pkcs15::OpenOptions options;
    options.caps = card::caps_from_atr(atr_);
    options.log = log_;
    const std::uint64_t resets = channel_->resets();
    app_.emplace(pkcs15::CardApp::open(channel_->link(), options));
    seen_resets_ = resets;
    stale_ = false;
}

std::shared_ptr<void> CardSession::begin(bool write) {
    if (removed_) gone();
    if (!has_app_ && !app_problem_.empty())
        throw Error(ErrorKind::NotSupported, "the card in reader '" + reader_ +
                                                 "' has no PKCS#15 application vscard can use (" +
                                                 app_problem_ +
                                                 "); format a blank card with 'vscardctl format'");
    auto hold = channel_->hold();
    const std::uint64_t resets = channel_->resets();
    if (write && app_ && !stale_ && resets == seen_resets_ && !app_->directory_unchanged()) {
        log_line("card/" + serial_ + ": changed by another program; reading it again");
        stale_ = true;
    }
    if (!app_ || stale_ || resets != seen_resets_) {
        open_app();
        if (has_app_ && app_->serial() != serial_) {
            // Another card under the same connection: this session's model is not its.
            removed_ = true;
            app_.reset();
            gone();
        }
    }
    return hold;
}

void CardSession::verify_locked() {
    std::optional<SecureBytes> pin = pins_ ? pins_->get() : std::nullopt;
    const std::string target = "card/" + serial_;
    if (!pin)
        throw Error(ErrorKind::Locked,
                    target + " needs its PIN; unlock it with 'vscardctl unlock " + target + "'");
    try {
        app_->verify_pin(*pin);
    } catch (const card::PinError& e) {
        pins_->forget();
        std::string tries = e.tries_left() >= 0 ? std::to_string(e.tries_left()) : "unknown";
        log_line(target + ": the PIN held by the agent was refused (" + e.what() +
                 "); forgotten, tries left: " + tries);
        if (e.kind() == ErrorKind::WrongPassword)
            throw Error(ErrorKind::Locked, target + ": wrong PIN (" + tries +
                                               " tries left); unlock again with 'vscardctl "
                                               "unlock " +
                                               target + "'");
        throw Error(ErrorKind::Locked, target + ": " + e.what());
    }
}

void CardSession::verify() {
    std::lock_guard lock(mutex_);
    auto hold = begin();
    verify_locked();  // also when the card is verified already: the PIN must be the agent's
}

card::PinStatus CardSession::pin_status() {
    return run([](pkcs15::CardApp& app) { return app.pin_status(); });
}

void CardSession::logout() {
    std::lock_guard lock(mutex_);
    if (removed_ || !app_) return;
    try {
        auto hold = begin();
        app_->logout();
        app_->drop_content(pkcs15::Area::Private);
        app_->drop_content(pkcs15::Area::Vscard);
    } catch (const Error& e) {
        // The card keeps nothing verified across a reset or removal anyway.
        log_line("card/" + serial_ + ": logout: " + e.what());
        app_.reset();
    }
}

void CardSession::removed() {
    std::lock_guard lock(mutex_);
    removed_ = true;
    app_.reset();
}

std::uint64_t CardSession::apdu_count() const {
    return log_->commands();
}

}  // namespace vscard
