# `cmake --install` layout and `cpack -G DEB`.
install(TARGETS vscard-agent vscard-mountd vscardctl vscard-emu
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vscard)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "secure, usable copies of your smart cards, as files")
set(CPACK_PACKAGE_DESCRIPTION
    "vscard keeps an encrypted virtual smart card (VSC) for each of your smart cards and\n\
mounts cards and VSCs as folders: backup, export and restore are ordinary file copies.")
set(CPACK_PACKAGE_CONTACT "vscard maintainers <maintainers@vscard.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # library packages from dpkg-shlibdeps
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3, pcscd")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "vsmartcard-vpcd, opensc")
include(CPack)
