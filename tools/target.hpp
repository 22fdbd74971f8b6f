#pragma once
// A TARGET of DESIGN §7: vsc/NAME or card/SERIAL.
#include <string>

namespace vscard::tools {

struct Target {
    bool card = false;
    std::string name;  // the VSC's name or the card's serial
    std::string text() const { return (card ? "card/" : "vsc/") + name; }
};

// Parses TARGET (a trailing slash is allowed); throws Error(Usage) saying what to give.
Target target_of(std::string target);

}  // namespace vscard::tools
