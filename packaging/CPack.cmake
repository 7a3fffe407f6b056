# CPack: `cpack -G DEB` in a build dir makes etcdfs_<version>_<arch>.deb from the install rules
# (binary, mount helper link, libetcdc, header, pkg-config file, man page, examples).
# The runtime dependencies are computed by dpkg-shlibdeps from the linked libraries (libgrpc29,
# libprotobuf-c1, libssl3, libfuse3-3, libc6 ...), plus fuse3 for mount.fuse3 and fusermount3.
set(CPACK_PACKAGE_NAME etcdfs)
set(CPACK_PACKAGE_VENDOR "etcdfs")
set(CPACK_PACKAGE_CONTACT "etcdfs maintainers <etcdfs@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "FUSE filesystem over an etcd v3 key prefix")
set(CPACK_PACKAGE_DESCRIPTION
    "etcdfs mounts an etcd v3 key prefix as a directory tree: files are keys, directories are \
key prefixes. Includes libetcdc, the etcd v3 client library it is built on.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "etcd-client")
set(CPACK_STRIP_FILES OFF)
include(CPack)
