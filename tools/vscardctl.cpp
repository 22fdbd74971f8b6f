// vscardctl: the one command users type (DESIGN §7).
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>

#include "agent_client.hpp"
#include "backup.hpp"
#include "card/iso7816.hpp"
#include "card/pcsc.hpp"
#include "card/personalize.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "locations.hpp"
#include "password_input.hpp"
#include "pkcs15/card_app.hpp"
#include "store/vsc_file.hpp"
#include "target.hpp"
#include "vfs/card_family_key.hpp"
#include "vscard/version.hpp"

using namespace vscard;

namespace {

struct Common {
    std::optional<std::string> store;
    std::optional<std::string> agent;
};

std::string format_duration(std::chrono::seconds s) {
    auto v = s.count();
    if (v >= 3600) return std::to_string(v / 3600) + "h" + std::to_string(v % 3600 / 60) + "m";
    if (v >= 60) return std::to_string(v / 60) + "m" + std::to_string(v % 60) + "s";
    return std::to_string(v) + "s";
}

using tools::Target;
using tools::target_of;

// TARGET must be a VSC here; returns its NAME.
std::string vsc_name_of(const std::string& target) {
    Target t = target_of(target);
    if (t.card)
        throw Error(ErrorKind::Usage, "'" + target + "' is a card; this command takes vsc/NAME");
    return t.name;
}

// The card with SERIAL in whichever reader holds it, its application open, under a
// transaction (other programs wait until it goes).
struct InsertedCard {
    std::unique_ptr<card::Card> card;
    std::unique_ptr<card::Transaction> hold;
    std::optional<pkcs15::CardApp> app;
};

InsertedCard find_card(const std::string& serial) {
    for (const auto& reader : card::list_readers()) {
        InsertedCard c;
        try {
            c.card = std::make_unique<card::Card>(reader);
            c.hold = std::make_unique<card::Transaction>(*c.card);
            c.app.emplace(
                pkcs15::CardApp::open(*c.card, {card::caps_from_atr(c.card->atr()), nullptr}));
        } catch (const Error&) {
            continue;  // no card, or not one of ours
        }
        if (c.app->serial() == serial) return c;
    }
    throw Error(ErrorKind::NotFound,
                "card " + serial + " is in no reader; insert it (see 'vscardctl readers')");
}

// Tries left after a failed VERIFY, in words.
[[noreturn]] void pin_refused(const std::string& target, const card::PinError& e) {
    if (e.kind() == ErrorKind::WrongPassword)
        throw Error(ErrorKind::WrongPassword,
                    "wrong PIN for " + target + " (" + std::to_string(e.tries_left()) +
                        (e.tries_left() == 1 ? " try" : " tries") +
                        " left before the card blocks it); nothing was unlocked");
    throw Error(ErrorKind::Locked, target + ": " + e.what());
}

std::shared_ptr<VscFile> open_vsc(const Common& c, const std::string& name) {
    auto path = VscFile::path_for(store_dir(c.store), name);
    try {
        return VscFile::open(path);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::NotFound)
            throw Error(ErrorKind::NotFound, "no VSC named '" + name + "' in " +
                                                 store_dir(c.store).string() +
                                                 "; see 'vscardctl list'");
        throw;
    }
}

SecureBytes read_password(bool from_stdin, const std::string& prompt, bool confirm) {
    return from_stdin ? tools::password_from_stdin("password")
                      : tools::password_from_terminal(prompt, confirm);
}

std::vector<std::string> vsc_names(const std::filesystem::path& store) {
    std::vector<std::string> names;
    DIR* dir = ::opendir(store.c_str());
    if (!dir) return names;
    while (dirent* e = ::readdir(dir)) {
        std::string f = e->d_name;
        if (f.size() > 4 && f[0] != '.' && f.compare(f.size() - 4, 4, ".vsc") == 0)
            names.push_back(f.substr(0, f.size() - 4));
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
}

std::map<std::string, std::chrono::seconds> unlocked_targets(const Common& c) {
    std::map<std::string, std::chrono::seconds> out;
    AgentClient agent(agent_socket(c.agent));
    if (!agent.reachable()) return out;
    for (auto& e : agent.status()) out[e.target] = e.expires_in;
    return out;
}

int cmd_create(const Common& c, std::string name, bool pw_stdin, const std::string& kdf_target,
               const std::optional<std::string>& for_card) {
    if (name.empty() && for_card) name = *for_card;  // DESIGN §3: card/S and vsc/S side by side
    VscFile::validate_name(name);
    auto store = store_dir(c.store);
    if (std::filesystem::exists(VscFile::path_for(store, name)))
        throw Error(ErrorKind::Exists,
                    "a VSC named '" + name + "' already exists; pick another name");
    SecureBytes pw;
    VscFile::CreateOptions options;
    if (for_card) {
        // The card's PIN becomes the VSC's password, so one unlock opens both (DESIGN §4);
        // it is checked on the card first.
        InsertedCard card = find_card(*for_card);
        pw = read_password(
            pw_stdin,
            "PIN of card/" + *for_card + " (also the password of vsc/" + name + "): ", false);
        try {
            card.app->verify_pin(pw);
        } catch (const card::PinError& e) {
            pin_refused("card/" + *for_card, e);
        }
        // The card and its VSC share the family key, so key envelopes move both ways.
        options.family_key = card_family_key(*card.app, pw, true);
        card.app->logout();
        options.assigned_card = *for_card;
    } else {
        pw = read_password(pw_stdin, "Password for the new VSC " + name + ": ", true);
    }
    options.kdf_target = parse_duration_ms(kdf_target);
    if (options.kdf_target.count() < 1)
        throw Error(ErrorKind::Usage, "--kdf-target must be at least 1ms");
    auto path = VscFile::create(store, name, pw, options);
    std::cout << "created vsc/" << name << " (" << path.string() << ")\n";
    return 0;
}

int cmd_list(const Common& c) {
    auto store = store_dir(c.store);
    auto unlocked = unlocked_targets(c);
    auto names = vsc_names(store);
    if (names.empty()) {
        std::cout << "no VSC in " << store.string()
                  << "; create one with 'vscardctl create NAME'\n";
        return 0;
    }
    for (const auto& name : names) {
        std::string target = "vsc/" + name;
        try {
            auto file = VscFile::open(VscFile::path_for(store, name));
            std::cout << target << "\t" << (unlocked.count(target) ? "unlocked" : "locked")
                      << "\tuid " << file->uid_hex();
            if (!file->assigned_card().empty())
                std::cout << "\tassigned to card/" << file->assigned_card();
            std::cout << "\n";
        } catch (const Error& e) {
            std::cout << target << "\tdamaged\t" << e.what() << "\n";
        }
    }
    return 0;
}

void require_agent(AgentClient& agent) {
    if (!agent.reachable())
        throw Error(
            ErrorKind::Unavailable,
            "cannot reach vscard-agent at " + agent.socket().string() +
                "; start it with 'vscard-agent &' or 'systemctl --user start vscard-agent.socket'");
}

// The PIN is tried on the card first, so a wrong one never reaches the agent (nor the mount,
// which would spend another try with it).
int unlock_card(AgentClient& agent, const Target& t, bool pw_stdin, std::chrono::seconds ttl) {
    InsertedCard card = find_card(t.name);
    require_agent(agent);
    SecureBytes pin = read_password(pw_stdin, "PIN of " + t.text() + ": ", false);
    try {
        card.app->verify_pin(pin);
    } catch (const card::PinError& e) {
        pin_refused(t.text(), e);
    }
    card.app->logout();  // the card is opened through the agent, by whoever holds the PIN there
    agent.put(t.text(), pin, ttl);
    std::cout << t.text() << " unlocked";
    if (ttl.count()) std::cout << " for " << format_duration(ttl);
    std::cout << "\n";
    return 0;
}

int cmd_unlock(const Common& c, const std::string& target, bool pw_stdin,
               const std::optional<std::string>& timeout) {
    Target t = target_of(target);
    std::chrono::seconds ttl{0};
    if (timeout) ttl = parse_duration(*timeout);
    AgentClient agent(agent_socket(c.agent));
    if (t.card) return unlock_card(agent, t, pw_stdin, ttl);
    const std::string& name = t.name;
    auto file = open_vsc(c, name);
    require_agent(agent);
    SecureBytes pw = read_password(pw_stdin, "Password for vsc/" + name + ": ", false);
    try {
        file->unlock(pw);  // verified here so a wrong password never reaches the agent
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::WrongPassword)
            throw Error(ErrorKind::WrongPassword,
                        "wrong password for vsc/" + name + "; nothing was unlocked");
        throw;
    }
    agent.put("vsc/" + name, pw, ttl);
    std::cout << "vsc/" << name << " unlocked";
    if (ttl.count()) std::cout << " for " << format_duration(ttl);
    std::cout << "\n";
    return 0;
}

int cmd_lock(const Common& c, const std::optional<std::string>& target, bool all) {
    AgentClient agent(agent_socket(c.agent));
    if (target && all) throw Error(ErrorKind::Usage, "give a TARGET or --all, not both");
    if (target) {
        Target t = target_of(*target);
        agent.lock(t.text());
        std::cout << t.text() << " locked\n";
    } else {
        agent.lock_all();
        std::cout << "all locked\n";
    }
    return 0;
}

// READER is a PC/SC reader name, or its index in `vscardctl readers`.
std::string reader_named(const std::string& reader) {
    auto readers = card::list_readers();
    if (!reader.empty() && reader.find_first_not_of("0123456789") == std::string::npos) {
        std::size_t index = std::stoul(reader);
        if (index < readers.size()) return readers[index];
    }
    for (const auto& name : readers)
        if (name == reader) return name;
    throw Error(ErrorKind::NotFound,
                "no reader '" + reader + "'; see 'vscardctl readers' for names and numbers");
}

int cmd_readers() {
    auto readers = card::list_readers();
    if (readers.empty()) {
        std::cout << "no smart-card reader; plug one in (pcscd must be running)\n";
        return 0;
    }
    for (std::size_t i = 0; i < readers.size(); ++i) {
        std::cout << i << "\t" << readers[i] << "\t";
        try {
            card::Card card(readers[i]);
            card::Transaction hold(card);
            std::cout << "card " << card::to_hex(card.atr(), "");
            try {
                auto app = pkcs15::CardApp::open(card, {card::caps_from_atr(card.atr()), nullptr});
                std::cout << "\tserial " << app.serial();
                if (!app.label().empty()) std::cout << "\tlabel " << app.label();
            } catch (const Error& e) {
                if (e.kind() != ErrorKind::NotFound) throw;
                std::cout << "\tblank or not PKCS#15";
            }
        } catch (const Error& e) {
            std::cout << (e.kind() == ErrorKind::NotFound ? "no card" : e.what());
        }
        std::cout << "\n";
    }
    return 0;
}

// The family key of vsc/NAME, which must be unlocked (its password in the agent).
SecureBytes vsc_family_key(const Common& c, const std::string& name) {
    auto file = open_vsc(c, name);
    AgentClient agent(agent_socket(c.agent));
    require_agent(agent);
    auto password = agent.get("vsc/" + name);
    if (!password)
        throw Error(ErrorKind::Locked, "vsc/" + name +
                                           " is locked; unlock it with 'vscardctl "
                                           "unlock vsc/" +
                                           name + "' first");
    return file->unlock(*password).family_key;
}

int cmd_format(const Common& c, const std::string& reader, const std::string& label, bool pin_stdin,
               const std::optional<std::string>& for_vsc) {
    // A card made to take a VSC's keys gets the VSC's family key (checked before anything
    // is written to the card).
    std::optional<SecureBytes> family;
    if (for_vsc) family = vsc_family_key(c, vsc_name_of("vsc/" + *for_vsc));
    std::string name = reader_named(reader);
    card::Card card(name);
    card::Transaction hold(card);
    auto personalizer = card::personalizer_for(card.atr());
    if (!personalizer)
        throw Error(ErrorKind::NotSupported,
                    "vscard cannot set a PIN on the card in '" + name + "' (ATR " +
                        card::to_hex(card.atr(), "") +
                        "): it knows how to personalise the vscard emulator only, so far");
    SecureBytes pin = pin_stdin ? tools::password_from_stdin("PIN")
                                : tools::password_from_terminal("New PIN for the card: ", true);
    pkcs15::FormatOptions options;
    options.caps = card::caps_from_atr(card.atr());
    auto app = pkcs15::format(card, *personalizer, label, pin, options);
    if (family) set_card_family_key(app, *family, pin);
    app.logout();  // formatting verified the PIN: the card must not stay open
    std::cout << "formatted the card in '" << name << "': serial " << app.serial() << ", label "
              << label;
    if (for_vsc) std::cout << ", keys of vsc/" << *for_vsc << " importable";
    std::cout << "\n";
    return 0;
}

// The card with its PIN verified: the PIN from the agent when the card is unlocked there (a
// PIN the card refuses is forgotten there at once, as the mount does), else asked for.
InsertedCard verified_card(const Common& c, const Target& t, bool pin_stdin) {
    if (!t.card)
        throw Error(ErrorKind::Usage,
                    "'" + t.text() + "' is a VSC; this command takes card/SERIAL");
    InsertedCard card = find_card(t.name);
    AgentClient agent(agent_socket(c.agent));
    std::optional<SecureBytes> pin;
    if (!pin_stdin && agent.reachable()) pin = agent.get(t.text());
    const bool from_agent = pin.has_value();
    if (!pin) pin = read_password(pin_stdin, "PIN of " + t.text() + ": ", false);
    try {
        card.app->verify_pin(*pin);
    } catch (const card::PinError& e) {
        if (from_agent) agent.forget(t.text());
        pin_refused(t.text(), e);
    }
    return card;
}

struct KeyTypeChoice {
    card::GeneratedKeyType type;
    unsigned rsa_bits;
    const char* description;
};

KeyTypeChoice key_type_named(const std::string& name) {
    static const std::map<std::string, KeyTypeChoice> types = {
        {"p256", {card::GeneratedKeyType::EcP256, 0, "EC P-256"}},
        {"p384", {card::GeneratedKeyType::EcP384, 0, "EC P-384"}},
        {"rsa2048", {card::GeneratedKeyType::Rsa, 2048, "RSA 2048"}},
        {"rsa3072", {card::GeneratedKeyType::Rsa, 3072, "RSA 3072"}},
        {"rsa4096", {card::GeneratedKeyType::Rsa, 4096, "RSA 4096"}},
    };
    auto it = types.find(name);
    if (it == types.end())
        throw Error(ErrorKind::Usage, "unknown key type '" + name +
                                          "'; choose p256, p384, rsa2048, rsa3072 or rsa4096");
    return it->second;
}

int cmd_generate_key(const Common& c, const std::string& target, const std::string& name,
                     const std::string& type_name, bool pin_stdin) {
    const KeyTypeChoice type = key_type_named(type_name);
    Target t = target_of(target);
    InsertedCard card = verified_card(c, t, pin_stdin);
    if (card.app->find(pkcs15::Area::Vscard, std::string(pkcs15::kSecretLabelPrefix) + name))
        throw Error(ErrorKind::Exists, t.text() + "/secret/" + name + " exists; pick another name");
    Bytes spki = card.app->generate_key(name, type.type, type.rsa_bits);
    card.app->logout();
    std::cout << "generated " << type.description << " key '" << name << "' on " << t.text()
              << "; it never leaves the card, so no backup can hold it. Public key (also in "
              << "secret/" << name << ".pub of the mount once the card is inserted again):\n"
              << keys::public_pem_of_spki(spki);
    return 0;
}

int cmd_delete_key(const Common& c, const std::string& target, const std::string& name,
                   bool pin_stdin, bool yes) {
    Target t = target_of(target);
    InsertedCard card = verified_card(c, t, pin_stdin);
    const std::string label = std::string(pkcs15::kSecretLabelPrefix) + name;
    const bool envelope = card.app->find(pkcs15::Area::Vscard, label).has_value();
    const bool key = card.app->private_key(name).has_value();
    if (!envelope && !key)
        throw Error(ErrorKind::NotFound, t.text() + " has no key '" + name + "'");
    if (key && !envelope && !yes)
        throw Error(ErrorKind::Usage, "key '" + name + "' was made on " + t.text() +
                                          " and no copy of it exists anywhere: deleting it is "
                                          "final. Repeat with --yes to delete it");
    if (key) card.app->remove_key(name);  // the key before its envelope, as the mount does
    if (envelope) card.app->remove(pkcs15::Area::Vscard, label);
    if (card.app->find(pkcs15::Area::Vscard, label + ".pub"))
        card.app->remove(pkcs15::Area::Vscard, label + ".pub");
    card.app->logout();
    std::cout << "deleted key '" << name << "' from " << t.text() << "\n";
    return 0;
}

Bytes read_all(std::istream& in) {
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int cmd_sign(const Common& c, const std::string& target, const std::string& name,
             const std::optional<std::string>& input, const std::optional<std::string>& output,
             bool pin_stdin) {
    if (pin_stdin && !input)
        throw Error(ErrorKind::Usage, "with --pin-stdin the data to sign comes from --in FILE");
    Bytes data;
    if (input) {
        std::ifstream file(*input, std::ios::binary);
        if (!file) throw Error(ErrorKind::NotFound, "cannot read " + *input);
        data = read_all(file);
    }
    Target t = target_of(target);
    InsertedCard card = verified_card(c, t, pin_stdin);
    if (!input) data = read_all(std::cin);
    const auto key = card.app->private_key(name);
    if (!key)
        throw Error(ErrorKind::NotFound, t.text() + " has no key '" + name + "' (see " +
                                             "secret/ of the card in the mount)");
    const bool rsa = key->kind == pkcs15::KeyKind::PrivateRsa;
    const Bytes hash = keys::sha256(data);
    Bytes signature = card.app->sign(name, rsa ? keys::sha256_digest_info(hash) : hash);
    card.app->logout();
    if (!rsa) signature = keys::ecdsa_signature_der(signature);
    std::ofstream file;
    if (output) {
        file.open(*output, std::ios::binary | std::ios::trunc);
        if (!file) throw Error(ErrorKind::NotFound, "cannot write " + *output);
    }
    std::ostream& out = output ? file : std::cout;
    out.write(reinterpret_cast<const char*>(signature.data()),
              static_cast<std::streamsize>(signature.size()));
    out.flush();
    if (!out) throw Error(ErrorKind::Io, "cannot write the signature");
    return 0;
}

int cmd_status(const Common& c) {
    AgentClient agent(agent_socket(c.agent));
    std::cout << "store: " << store_dir(c.store).string() << "\n";
    if (!agent.reachable()) {
        std::cout << "agent: not running at " << agent.socket().string()
                  << " (start it with 'vscard-agent &' or 'systemctl --user start "
                     "vscard-agent.socket')\n";
        return 0;
    }
    std::cout << "agent: " << agent.socket().string() << "\n";
    auto entries = agent.status();
    if (entries.empty()) std::cout << "unlocked: nothing\n";
    for (auto& e : entries)
        std::cout << "unlocked: " << e.target << " (locks in " << format_duration(e.expires_in)
                  << ")\n";
    return 0;
}

// The agent may hold the old secret: replace it so the mount keeps working.
void update_agent(const Common& c, const std::string& target, const SecureBytes& secret) {
    AgentClient agent(agent_socket(c.agent));
    if (!agent.reachable()) return;
    for (auto& e : agent.status())
        if (e.target == target) agent.put(e.target, secret, e.expires_in);
}

// A card's PIN, and the family key wrapped under it (DESIGN §5).
int passwd_card(const Common& c, const Target& t, bool pw_stdin) {
    InsertedCard card = find_card(t.name);
    SecureBytes old_pin = read_password(pw_stdin, "Current PIN of " + t.text() + ": ", false);
    SecureBytes new_pin = read_password(pw_stdin, "New PIN of " + t.text() + ": ", true);
    try {
        change_card_pin(*card.app, old_pin, new_pin);
    } catch (const card::PinError& e) {
        pin_refused(t.text(), e);
    }
    card.app->logout();
    update_agent(c, t.text(), new_pin);
    std::cout << "PIN of " << t.text() << " changed";
    std::string assigned;
    for (const auto& name : vsc_names(store_dir(c.store))) {
        try {
            if (VscFile::open(VscFile::path_for(store_dir(c.store), name))->assigned_card() ==
                t.name)
                assigned = name;
        } catch (const Error&) {
        }
    }
    if (!assigned.empty())
        std::cout << "; vsc/" << assigned << " keeps the old PIN as its password until "
                  << "'vscardctl passwd vsc/" << assigned << "'";
    std::cout << "\n";
    return 0;
}

int cmd_passwd(const Common& c, const std::string& target, bool pw_stdin) {
    if (Target t = target_of(target); t.card) return passwd_card(c, t, pw_stdin);
    std::string name = vsc_name_of(target);
    auto file = open_vsc(c, name);
    SecureBytes old_pw = read_password(pw_stdin, "Current password for vsc/" + name + ": ", false);
    SecureBytes new_pw = read_password(pw_stdin, "New password for vsc/" + name + ": ", true);
    try {
        file->change_password(old_pw, new_pw);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::WrongPassword)
            throw Error(ErrorKind::WrongPassword,
                        "wrong current password for vsc/" + name + "; nothing was changed");
        throw;
    }
    update_agent(c, "vsc/" + name, new_pw);
    std::cout << "password of vsc/" << name << " changed\n";
    return 0;
}

int cmd_check(const Common& c, const std::string& target, bool pw_stdin) {
    std::string name = vsc_name_of(target);
    auto file = open_vsc(c, name);
    std::optional<VscKeys> keys;
    if (pw_stdin) {
        keys = file->unlock(tools::password_from_stdin("password"));
    } else {
        AgentClient agent(agent_socket(c.agent));
        if (agent.reachable())
            if (auto pw = agent.get("vsc/" + name)) keys = file->unlock(*pw);
    }
    IntegrityReport report = file->check(keys ? &*keys : nullptr);
    std::cout << "vsc/" << name << ": " << report.nodes_checked << " objects, "
              << report.chunks_checked << " data blocks checked"
              << (keys ? "" : " (public area only: unlock it to check private and secret)") << "\n";
    for (auto& p : report.problems) std::cout << "problem: " << p << "\n";
    if (!report.ok())
        throw Error(ErrorKind::Corrupt, "vsc/" + name + " failed its integrity check");
    std::cout << "ok\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    ::prctl(PR_SET_DUMPABLE, 0);  // passwords pass through this process
    init_secure_heap();
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);

    CLI::App app{"vscardctl: create, unlock and look after your virtual smart cards"};
    app.set_version_flag("--version", std::string("vscardctl ") + kVersion);
    app.require_subcommand(1);
    Common c;
    app.add_option("--store", c.store,
                   "VSC store folder (default: $VSCARD_STORE, else "
                   "$XDG_DATA_HOME/vscard, else ~/.local/share/vscard)");
    app.add_option("--agent", c.agent,
                   "vscard-agent socket (default: $VSCARD_AGENT, else "
                   "$XDG_RUNTIME_DIR/vscard/agent.sock)");

    std::string name, target;
    std::optional<std::string> opt_target, timeout;
    bool pw_stdin = false, all = false;
    std::string kdf_target = "250ms";

    auto* create = app.add_subcommand("create", "create a new VSC named NAME");
    std::optional<std::string> for_card;
    create->add_option("NAME", name,
                       "name of the VSC (letters, digits, . _ -; default with --for-card: the "
                       "card's serial)");
    create->add_option("--for-card", for_card,
                       "the serial of the card this VSC keeps a copy of (it must be inserted); "
                       "the card's PIN becomes the VSC's password");
    create->add_flag("--password-stdin", pw_stdin, "read the password from standard input");
    create
        ->add_option("--kdf-target", kdf_target,
                     "how long deriving the key from the password takes on this machine; "
                     "longer resists guessing better")
        ->capture_default_str();

    auto* list = app.add_subcommand("list", "list the VSCs of the store");

    auto* unlock = app.add_subcommand("unlock", "hand the password of TARGET to the agent");
    unlock->add_option("TARGET", target, "vsc/NAME or card/SERIAL")->required();
    unlock->add_flag("--password-stdin", pw_stdin, "read the password from standard input");
    unlock->add_option("--timeout", timeout, "lock again after DUR (e.g. 15m, 2h)");

    auto* lock = app.add_subcommand("lock", "lock TARGET, or everything");
    lock->add_option("TARGET", opt_target, "vsc/NAME or card/SERIAL (default: everything)");
    lock->add_flag("--all", all, "lock every target");

    auto* status = app.add_subcommand("status", "show the agent and what is unlocked");

    auto* passwd = app.add_subcommand("passwd", "change the password of TARGET");
    passwd->add_option("TARGET", target, "vsc/NAME, or card/SERIAL (its PIN)")->required();
    passwd->add_flag("--password-stdin", pw_stdin,
                     "read the current password, then the new one, from standard input");

    auto* readers = app.add_subcommand("readers", "list smart-card readers and their cards");

    std::string reader, card_label = "vscard";
    auto* format =
        app.add_subcommand("format", "write a fresh PKCS#15 structure and a PIN onto a blank card");
    format->add_option("READER", reader, "reader name, or its number in 'vscardctl readers'")
        ->required();
    format->add_option("--label", card_label, "the card's label")->capture_default_str();
    format->add_flag("--pin-stdin", pw_stdin, "read the new PIN from standard input");
    std::optional<std::string> for_vsc;
    format->add_option("--for-vsc", for_vsc,
                       "NAME of an unlocked VSC whose keys this card is to take (restore): the "
                       "card gets the VSC's family key");

    auto* check = app.add_subcommand("check", "verify the integrity of a VSC file");
    check->add_option("TARGET", target, "vsc/NAME")->required();
    check->add_flag("--password-stdin", pw_stdin,
                    "read the password from standard input to check private and secret too");

    std::string key_type = "p256";
    bool yes = false;
    auto* generate_key = app.add_subcommand(
        "generate-key", "have a card generate a key pair that never leaves it (secret/NAME)");
    generate_key->add_option("TARGET", target, "card/SERIAL")->required();
    generate_key->add_option("NAME", name, "the key's name (its entry in secret/)")->required();
    generate_key->add_option("--type", key_type, "p256, p384, rsa2048, rsa3072 or rsa4096")
        ->capture_default_str();
    generate_key->add_flag("--pin-stdin", pw_stdin,
                           "read the PIN from standard input (default: the agent, else asked)");
    auto* delete_key =
        app.add_subcommand("delete-key", "delete key NAME from a card: its key and its envelope");
    delete_key->add_option("TARGET", target, "card/SERIAL")->required();
    delete_key->add_option("NAME", name, "the key's name (its entry in secret/)")->required();
    delete_key->add_flag("--yes", yes, "delete a key made on the card, of which no copy exists");
    delete_key->add_flag("--pin-stdin", pw_stdin,
                         "read the PIN from standard input (default: the agent, else asked)");

    std::optional<std::string> sign_in, sign_out;
    auto* sign = app.add_subcommand(
        "sign", "have a card sign data with key NAME (SHA-256; RSA PKCS#1 v1.5 or ECDSA, DER)");
    sign->add_option("TARGET", target, "card/SERIAL")->required();
    sign->add_option("NAME", name, "the key's name (its entry in secret/)")->required();
    sign->add_option("--in", sign_in, "the data to sign (default: standard input)");
    sign->add_option("--out", sign_out, "where the signature goes (default: standard output)");
    sign->add_flag("--pin-stdin", pw_stdin,
                   "read the PIN from standard input (default: the agent, else asked)");

    tools::BackupCommands backups(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::cerr << "vscardctl: " << e.what() << " (see vscardctl --help)\n";
        return 2;
    }
    try {
        if (*create) {
            if (name.empty() && !for_card)
                throw Error(ErrorKind::Usage, "create needs a NAME (or --for-card SERIAL)");
            return cmd_create(c, name, pw_stdin, kdf_target, for_card);
        }
        if (*list) return cmd_list(c);
        if (*unlock) return cmd_unlock(c, target, pw_stdin, timeout);
        if (*lock) return cmd_lock(c, opt_target, all);
        if (*status) return cmd_status(c);
        if (*passwd) return cmd_passwd(c, target, pw_stdin);
        if (*check) return cmd_check(c, target, pw_stdin);
        if (*readers) return cmd_readers();
        if (*format) return cmd_format(c, reader, card_label, pw_stdin, for_vsc);
        if (*generate_key) return cmd_generate_key(c, target, name, key_type, pw_stdin);
        if (*delete_key) return cmd_delete_key(c, target, name, pw_stdin, yes);
        if (*sign) return cmd_sign(c, target, name, sign_in, sign_out, pw_stdin);
        if (backups.selected()) return backups.run();
    } catch (const Error& e) {
        std::cerr << "vscardctl: " << e.what() << "\n";
        return exit_code_of(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "vscardctl: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
