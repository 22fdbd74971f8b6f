#include "target.hpp"

#include "error.hpp"
#include "store/vsc_file.hpp"

namespace vscard::tools {

Target target_of(std::string target) {
    while (target.size() > 1 && target.back() == '/') target.pop_back();
    if (target.rfind("vsc/", 0) == 0 && target.size() > 4) {
        std::string name = target.substr(4);
        VscFile::validate_name(name);
        return {false, name};
    }
    if (target.rfind("card/", 0) == 0 && target.size() > 5 &&
        target.find('/', 5) == std::string::npos)
        return {true, target.substr(5)};
    throw Error(ErrorKind::Usage, "'" + target +
                                      "' is not a target; use vsc/NAME or card/SERIAL (see "
                                      "'vscardctl list' and 'vscardctl readers')");
}

}  // namespace vscard::tools
