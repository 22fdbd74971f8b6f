// The agent's wire format: round trips, and clean errors (never a crash) on hostile input.
#include <gtest/gtest.h>

#include <random>

#include "agent_client.hpp"
#include "agent_protocol.hpp"
#include "error.hpp"

namespace vscard::agent {
namespace {

Bytes payload_of(const SecureBytes& frame) {
    return Bytes(frame.begin() + 4, frame.end());
}

Message roundtrip(const Message& m) {
    SecureBytes frame = encode(m);
    FrameDecoder d;
    d.append(frame);
    auto payload = d.next();
    EXPECT_TRUE(payload.has_value());
    EXPECT_EQ(d.buffered(), 0u);
    return decode(*payload);
}

Bytes frame_of(const Bytes& payload) {
    Bytes out;
    auto n = static_cast<std::uint32_t>(payload.size());
    out = {static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16),
           static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)};
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

void expect_invalid(const Bytes& payload) {
    try {
        decode(payload);
        FAIL() << "decode accepted a malformed payload";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Invalid) << e.what();
    }
}

TEST(AgentProtocol, PutRoundTripKeepsBinarySecret) {
    Message m = request(Op::Put, "vsc/work");
    const std::uint8_t raw[] = {0, 1, 2, 0xff, 0, 'x'};
    m.secret = secure_copy(ByteView(raw, sizeof raw));
    m.seconds = 3600;
    Message r = roundtrip(m);
    EXPECT_EQ(r.op, Op::Put);
    EXPECT_EQ(r.target, "vsc/work");
    EXPECT_EQ(r.secret, m.secret);
    EXPECT_EQ(r.seconds, 3600u);
}

TEST(AgentProtocol, EveryRequestAndReplyRoundTrips) {
    for (Op op : {Op::Get, Op::Forget, Op::Lock, Op::Touch}) {
        Message r = roundtrip(request(op, "card/12AB"));
        EXPECT_EQ(r.op, op);
        EXPECT_EQ(r.target, "card/12AB");
    }
    for (Op op : {Op::LockAll, Op::Status, Op::Watch, Op::Ok, Op::NotFound})
        EXPECT_EQ(roundtrip(request(op)).op, op);

    Message secret = request(Op::Secret);
    secret.secret = secure_from("1234");
    EXPECT_EQ(roundtrip(secret).secret, secure_from("1234"));

    Message entries = request(Op::Entries);
    entries.entries = {{"vsc/a", std::chrono::seconds(5)}, {"card/B", std::chrono::seconds(0)}};
    Message re = roundtrip(entries);
    ASSERT_EQ(re.entries.size(), 2u);
    EXPECT_EQ(re.entries[0].target, "vsc/a");
    EXPECT_EQ(re.entries[0].expires_in, std::chrono::seconds(5));
    EXPECT_EQ(re.entries[1].target, "card/B");

    Message ev = roundtrip(event("vsc/a", true));
    EXPECT_EQ(ev.op, Op::Event);
    EXPECT_TRUE(ev.unlocked);
    EXPECT_FALSE(roundtrip(event("vsc/a", false)).unlocked);

    Message err = roundtrip(error_reply(ErrorKind::NoSpace, "quota"));
    EXPECT_EQ(err.op, Op::Fail);
    EXPECT_EQ(err.error_kind, ErrorKind::NoSpace);
    EXPECT_EQ(err.message, "quota");
}

TEST(AgentProtocol, DecoderReassemblesFramesFedByteByByte) {
    Message a = request(Op::Put, "vsc/a");
    a.secret = secure_from("s3cret");
    SecureBytes stream = encode(a);
    SecureBytes b = encode(request(Op::Status));
    stream.insert(stream.end(), b.begin(), b.end());

    FrameDecoder d;
    std::vector<Message> got;
    for (std::uint8_t byte : stream) {
        d.append(ByteView(&byte, 1));
        while (auto p = d.next()) got.push_back(decode(*p));
    }
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].secret, secure_from("s3cret"));
    EXPECT_EQ(got[1].op, Op::Status);
    EXPECT_EQ(d.buffered(), 0u);
}

TEST(AgentProtocol, DecoderReadsIntoSpaceDirectly) {
    SecureBytes frame = encode(request(Op::Get, "vsc/direct"));
    FrameDecoder d;
    std::size_t pos = 0;
    while (pos < frame.size()) {
        auto room = d.space();
        ASSERT_FALSE(room.empty());
        std::size_t n = std::min<std::size_t>(room.size(), 3);
        n = std::min(n, frame.size() - pos);
        std::copy_n(frame.begin() + pos, n, room.begin());
        d.commit(n);
        pos += n;
    }
    auto p = d.next();
    ASSERT_TRUE(p);
    EXPECT_EQ(decode(*p).target, "vsc/direct");
}

TEST(AgentProtocol, OversizeAndZeroLengthFramesAreRejected) {
    for (std::uint32_t len : {0u, static_cast<std::uint32_t>(kMaxFrame + 1), 0xffffffffu}) {
        FrameDecoder d;
        Bytes prefix = {static_cast<std::uint8_t>(len >> 24), static_cast<std::uint8_t>(len >> 16),
                        static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
        d.append(prefix);
        EXPECT_THROW(d.next(), Error) << "length " << len;
    }
    // The largest legal frame is accepted once complete, and not before.
    Bytes big(kMaxFrame, 0);
    FrameDecoder d;
    Bytes framed = frame_of(big);
    d.append(ByteView(framed).first(framed.size() - 1));
    EXPECT_FALSE(d.next().has_value());
    d.append(ByteView(framed).last(1));
    auto p = d.next();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->size(), kMaxFrame);
}

TEST(AgentProtocol, EncodeRefusesMessagesAboveTheFrameLimit) {
    Message m = request(Op::Entries);
    for (int i = 0; i < 400; ++i) m.entries.push_back({"vsc/" + std::string(200, 'a'), {}});
    EXPECT_THROW(encode(m), Error);
}

TEST(AgentProtocol, TruncatedPayloadsAreInvalid) {
    Message m = request(Op::Put, "vsc/abc");
    m.secret = secure_from("pw");
    m.seconds = 7;
    Bytes full = payload_of(encode(m));
    for (std::size_t n = 0; n < full.size(); ++n)
        expect_invalid(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n)));

    Message e = request(Op::Entries);
    e.entries = {{"vsc/a", std::chrono::seconds(1)}};
    Bytes entries = payload_of(encode(e));
    for (std::size_t n = 2; n < entries.size(); ++n)
        expect_invalid(Bytes(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(n)));
}

TEST(AgentProtocol, MalformedPayloadsAreInvalid) {
    expect_invalid({});
    expect_invalid({kVersion});
    expect_invalid({kVersion + 1, static_cast<std::uint8_t>(Op::Status)});  // version
    expect_invalid({kVersion, 0x00});                                       // opcode
    expect_invalid({kVersion, 0x7f});
    expect_invalid({kVersion, 0xff});
    expect_invalid({kVersion, static_cast<std::uint8_t>(Op::Status), 0});  // trailing byte
    // A field length beyond the payload, and one far beyond any limit.
    expect_invalid({kVersion, static_cast<std::uint8_t>(Op::Get), 0, 0, 0, 9, 'v', 's', 'c'});
    expect_invalid({kVersion, static_cast<std::uint8_t>(Op::Get), 0xff, 0xff, 0xff, 0xff});
    // An entry count the payload cannot hold must not make the decoder reserve memory.
    expect_invalid({kVersion, static_cast<std::uint8_t>(Op::Entries), 0xff, 0xff, 0xff, 0xff});
    // An event state other than 0/1.
    expect_invalid({kVersion, static_cast<std::uint8_t>(Op::Event), 2, 0, 0, 0, 0});
}

TEST(AgentProtocol, OversizeSecretAndTargetFieldsAreInvalid) {
    Message m = request(Op::Put, "vsc/a");
    m.secret = SecureBytes(kMaxSecret + 1, 'x');
    expect_invalid(payload_of(encode(m)));
    Message t = request(Op::Get, "vsc/" + std::string(kMaxTarget, 'x'));
    expect_invalid(payload_of(encode(t)));
}

TEST(AgentProtocol, UnknownErrorKindBecomesIo) {
    Bytes p = {kVersion, static_cast<std::uint8_t>(Op::Fail), 200, 0, 0, 0, 1, 'x'};
    Message m = decode(p);
    EXPECT_EQ(m.error_kind, ErrorKind::Io);
    EXPECT_EQ(m.message, "x");
}

TEST(AgentProtocol, RandomInputNeverCrashes) {
    std::mt19937 rng(1234);
    for (int round = 0; round < 20000; ++round) {
        std::size_t len = rng() % 48;
        Bytes junk(len);
        for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
        if (len >= 2 && rng() % 2) {
            junk[0] = kVersion;
            junk[1] = static_cast<std::uint8_t>(rng() % 2 ? 1 + rng() % 8 : 0x80 + rng() % 6);
        }
        try {
            decode(junk);
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Invalid);
        }
        FrameDecoder d;
        d.append(junk);
        try {
            while (auto p = d.next()) {
                try {
                    decode(*p);
                } catch (const Error&) {
                }
            }
        } catch (const Error&) {
        }
    }
}

TEST(AgentProtocol, TargetsAreValidated) {
    EXPECT_NO_THROW(validate_target("vsc/work"));
    EXPECT_NO_THROW(validate_target("card/0123ABCD"));
    EXPECT_NO_THROW(validate_target("vsc/" + std::string(kMaxTarget - 4, 'n')));
    for (std::string bad :
         {"", "vsc/", "card/", "work", "vsc", "/vsc/a", "vsc/a/b", "disk/a", "vsc/a\nb", "VSC/a"})
        EXPECT_THROW(validate_target(bad), Error) << bad;
    EXPECT_THROW(validate_target(std::string("vsc/a\0b", 7)), Error);
    EXPECT_THROW(validate_target("vsc/" + std::string(kMaxTarget, 'n')), Error);
}

TEST(AgentProtocol, ClientReportsAMissingAgentAsUnavailable) {
    AgentClient client("/nonexistent/vscard/agent.sock");
    try {
        client.status();
        FAIL() << "status() succeeded without an agent";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Unavailable);
        std::string msg = e.what();
        EXPECT_NE(msg.find("/nonexistent/vscard/agent.sock"), std::string::npos) << msg;
        EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
        EXPECT_NE(msg.find("vscard-agent &"), std::string::npos) << msg;
    }
    EXPECT_FALSE(client.reachable());
}

TEST(AgentProtocol, ClientValidatesBeforeConnecting) {
    AgentClient client("/nonexistent/agent.sock");
    try {
        client.put("nope", view_of(std::string("x")), std::chrono::seconds(0));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    }
    EXPECT_THROW(client.put("vsc/a", ByteView(), std::chrono::seconds(0)), Error);
    EXPECT_THROW(client.put("vsc/a", view_of(std::string("x")), std::chrono::seconds(-1)), Error);
}

}  // namespace
}  // namespace vscard::agent
