// The agent's socket protocol: frames cut into arbitrary reads, message decoding and the
// encode/decode round trip of every message that decodes.
#include <cstddef>
#include <cstdint>

#include "agent_protocol.hpp"
#include "error.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace vscard;
    fuzz::Input in(data, size);
    // The first bytes say how the stream is cut into reads.
    const std::uint8_t cut = in.byte();
    agent::FrameDecoder decoder;
    try {
        while (!in.empty()) {
            ByteView chunk = in.take(cut == 0 ? in.rest().size() : cut);
            decoder.append(chunk);
            while (auto payload = decoder.next()) {
                fuzz::check(payload->size() <= agent::kMaxFrame, "frame within kMaxFrame");
                agent::Message m;
                try {
                    m = agent::decode(*payload);
                } catch (const Error&) {
                    continue;
                }
                agent::op_name(m.op);
                agent::is_request(m.op);
                SecureBytes again = agent::encode(m);
                fuzz::check(again.size() >= 4, "encoded message has its length prefix");
                agent::Message back = agent::decode(ByteView(again).subspan(4));
                fuzz::check(back.op == m.op && back.target == m.target && back.secret == m.secret &&
                                back.message == m.message,
                            "message round trip");
            }
        }
    } catch (const Error&) {
    }
    return 0;
}
