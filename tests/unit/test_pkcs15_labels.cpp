// Data object labels <-> paths in the mount (rules in pkcs15.hpp): ordinary names map to
// themselves, anything else to a safe name that maps back, and non-canonical names are refused.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

#include "error.hpp"
#include "pkcs15/pkcs15.hpp"

namespace vscard::pkcs15 {
namespace {

using namespace std::literals;

// Every component is a name a POSIX file system takes, and valid UTF-8.
void expect_safe(const std::string& path) {
    ASSERT_FALSE(path.empty());
    std::string_view body = path;
    if (body.size() > 1 && body.back() == '/') body.remove_suffix(1);
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = body.find('/', start);
        const std::string_view c =
            body.substr(start, slash == std::string_view::npos ? slash : slash - start);
        EXPECT_FALSE(c.empty()) << path;
        EXPECT_NE(c, ".") << path;
        EXPECT_NE(c, "..") << path;
        EXPECT_LE(c.size(), 255u) << path;
        for (char ch : c) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << path;
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
}

void expect_pair(const std::string& label, const std::string& path) {
    EXPECT_EQ(label_to_path(label), path) << label;
    EXPECT_EQ(path_to_label(path), label) << path;
    expect_safe(path);
}

void expect_refused(std::string_view path, ErrorKind kind) {
    try {
        path_to_label(path);
        ADD_FAILURE() << "accepted " << path;
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), kind) << path;
    }
}

TEST(Pkcs15Labels, OrdinaryNamesAreThemselves) {
    for (const char* s :
         {"notes.txt", "dir/sub/file", "a b c", "100%.txt", "50%off.pdf", "%41",
          "%2f lower-case hex", "...", ".hidden/.x", "Grüße/日本語.txt", "emoji 🙂"})
        expect_pair(s, s);
}

TEST(Pkcs15Labels, FolderMarkers) {
    expect_pair("dir/", "dir/");
    expect_pair("dir/sub/", "dir/sub/");
    expect_pair("%/", "%25/");
}

TEST(Pkcs15Labels, SlashesThatAreNotFoldersAreEscaped) {
    expect_pair("/etc/passwd", "%2Fetc%2Fpasswd");
    expect_pair("a//b", "a%2F%2Fb");
    expect_pair("a//", "a%2F%2F");
    expect_pair("/", "%2F");
    expect_pair("//", "%2F%2F");
}

TEST(Pkcs15Labels, DotComponents) {
    expect_pair(".", "%2E");
    expect_pair("..", "%2E.");
    expect_pair("../x", "..%2Fx");
    expect_pair("a/../b", "a%2F..%2Fb");
    expect_pair("a/./b", "a%2F.%2Fb");
}

TEST(Pkcs15Labels, EmptyNulControlAndPercent) {
    expect_pair("", "%");
    expect_pair("%", "%25");
    expect_pair("a\0b"s, "a%00b");
    expect_pair("\0"s, "%00");
    expect_pair("line\nbreak\t\x7f", "line%0Abreak%09%7F");
    expect_pair("%2F", "%252F");
    expect_pair("%00", "%2500");
    expect_pair("%2E", "%252E");
    expect_pair("%~x", "%25~x");
    expect_pair("%%41", "%%41");
}

TEST(Pkcs15Labels, NonUtf8BytesAreEscaped) {
    expect_pair("\xFF\xFE", "%FF%FE");
    expect_pair("caf\xE9", "caf%E9");                 // Latin-1
    expect_pair("\xC0\xAF", "%C0%AF");                // overlong '/'
    expect_pair("\xED\xA0\x80", "%ED%A0%80");         // surrogate
    expect_pair("\xF4\x90\x80\x80", "%F4%90%80%80");  // above U+10FFFF
    expect_pair("\xE2\x82", "%E2%82");                // truncated sequence
    expect_pair("d\xC3\xA9j\xC3", "déj%C3");          // good then bad
}

TEST(Pkcs15Labels, LongComponentsAreShortenedWithAHash) {
    const std::string a(300, 'a');
    const std::string path = label_to_path(a);
    EXPECT_LE(path.size(), 255u);
    EXPECT_EQ(path.substr(path.size() - 18, 2), "%~");
    EXPECT_NE(label_to_path(a + "b"), path);
    expect_safe(label_to_path(std::string(255, '\x01')));  // escaping alone would triple it
    expect_safe(label_to_path("dir/" + std::string(400, 'x') + "/file"));
    expect_refused(path, ErrorKind::NameTooLong);
    // A label fits 255 bytes per component but OpenSC reads at most kMaxLabelBytes in all.
    const std::string longest(kMaxLabelBytes, 'z');
    EXPECT_EQ(path_to_label(longest), longest);
    expect_refused(std::string(200, 'z') + "/" + std::string(60, 'z'), ErrorKind::NameTooLong);
    expect_refused(std::string(256, 'z'), ErrorKind::NameTooLong);
}

TEST(Pkcs15Labels, NonCanonicalNamesAreRefused) {
    for (const char* p : {"a%2Fb", "%C3%A9", "%2E%2E", "x/%2E", "a%2F"})
        expect_refused(p, ErrorKind::Invalid);
    for (std::string_view p : {""sv, "/"sv, "a//b"sv, "./x"sv, "a/.."sv, "//"sv, "a\0b"sv})
        expect_refused(p, ErrorKind::Invalid);
}

TEST(Pkcs15Labels, RandomLabelsRoundTrip) {
    std::mt19937 rng(42);
    const char alphabet[] = {'a',    'b',    '/',    '/',    '.',    '%',  '%',    '2',
                             'E',    'F',    '0',    '~',    '\0',   '\n', '\x7f', '\xC3',
                             '\xA9', '\xFF', '\xE2', '\x82', '\xAC', ' '};
    for (int round = 0; round < 20000; ++round) {
        std::string label(rng() % 24, ' ');
        for (char& c : label) c = alphabet[rng() % sizeof(alphabet)];
        const std::string path = label_to_path(label);
        expect_safe(path);
        EXPECT_EQ(path_to_label(path), label) << path;
        // Whatever a user may type either maps back to itself or is refused.
        try {
            const std::string l2 = path_to_label(label);
            EXPECT_EQ(label_to_path(l2), label);
        } catch (const Error& e) {
            EXPECT_TRUE(e.kind() == ErrorKind::Invalid || e.kind() == ErrorKind::NameTooLong);
        }
    }
}

}  // namespace
}  // namespace vscard::pkcs15
