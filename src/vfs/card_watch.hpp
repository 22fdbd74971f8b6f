#pragma once
// Follows the cards in every PC/SC reader (DESIGN §3, §5) and hands the mount a session for
// each card inserted, and the reader's name when it goes. Sessions are opened on the
// monitor's thread: a card shows once its directory has been read.
#include <functional>
#include <memory>
#include <string>

#include "card/reader_monitor.hpp"
#include "vfs/card_session.hpp"

namespace vscard {

class CardWatch {
public:
    struct Callbacks {
        std::function<void(std::shared_ptr<CardSession>)> inserted;
        std::function<void(const std::string& reader)> removed;  // the card, or the reader
    };

    explicit CardWatch(Callbacks callbacks);
    ~CardWatch();
    CardWatch(const CardWatch&) = delete;
    CardWatch& operator=(const CardWatch&) = delete;

private:
    void on_event(const card::ReaderEvent& event);

    Callbacks callbacks_;
    std::unique_ptr<card::ReaderMonitor> monitor_;  // last: its thread uses the rest
};

}  // namespace vscard
