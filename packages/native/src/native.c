/*
 * trellis_native: the two system calls Node does not expose.
 *
 *   getOriginalDst(fd) -> { address, port, family } | null
 *     The destination a connection had before iptables REDIRECT/DNAT rewrote it
 *     (getsockopt SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6).
 *     Returns null when the socket has no conntrack original destination
 *     (ENOENT: the connection was not redirected). Throws on other errors.
 *
 *   sdNotify(state) -> boolean
 *     Sends `state` (e.g. "READY=1\nSTATUS=serving") as one datagram to the
 *     socket named by $NOTIFY_SOCKET (a path, or an abstract name starting with
 *     '@'). Returns false when NOTIFY_SOCKET is unset (not under systemd), true
 *     when sent. Throws on a send error.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), "TRELLIS_ERR_NATIVE", "N-API call failed");  \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "TRELLIS_ERR_NATIVE", msg);
  return NULL;
}

static napi_value make_result(napi_env env, const char *address, int port, int family) {
  napi_value obj, v;
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, obj, "address", v));
  CHECK(env, napi_create_int32(env, port, &v));
  CHECK(env, napi_set_named_property(env, obj, "port", v));
  CHECK(env, napi_create_int32(env, family, &v));
  CHECK(env, napi_set_named_property(env, obj, "family", v));
  return obj;
}

static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "TRELLIS_ERR_NATIVE", "getOriginalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return throw_errno(env, "getsockname", errno);

  char text[INET6_ADDRSTRLEN];
  if (local.ss_family == AF_INET6) {
    struct sockaddr_in6 dst;
    socklen_t dlen = sizeof dst;
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) == 0) {
      inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text);
      /* An IPv4 connection accepted on a dual-stack socket: ask the IPv4 table. */
      if (IN6_IS_ADDR_V4MAPPED(&dst.sin6_addr)) {
        return make_result(env, text + 7, ntohs(dst.sin6_port), 4);
      }
      return make_result(env, text, ntohs(dst.sin6_port), 6);
    }
    int err = errno;
    struct sockaddr_in dst4;
    socklen_t d4len = sizeof dst4;
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst4, &d4len) == 0) {
      inet_ntop(AF_INET, &dst4.sin_addr, text, sizeof text);
      return make_result(env, text, ntohs(dst4.sin_port), 4);
    }
    if (err == ENOENT || errno == ENOENT) {
      napi_value nul;
      CHECK(env, napi_get_null(env, &nul));
      return nul;
    }
    return throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", err);
  }
  struct sockaddr_in dst;
  socklen_t dlen = sizeof dst;
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0) {
    if (errno == ENOENT) {
      napi_value nul;
      CHECK(env, napi_get_null(env, &nul));
      return nul;
    }
    return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  }
  inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
  return make_result(env, text, ntohs(dst.sin_port), 4);
}

static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char state[4096];
  size_t state_len = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], state, sizeof state, &state_len) != napi_ok) {
    napi_throw_type_error(env, "TRELLIS_ERR_NATIVE", "sdNotify(state): state must be a string");
    return NULL;
  }
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || path[0] == '\0') {
    CHECK(env, napi_get_boolean(env, false, &result));
    return result;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t plen = strlen(path);
  if (plen >= sizeof addr.sun_path) {
    napi_throw_error(env, "TRELLIS_ERR_NATIVE", "NOTIFY_SOCKET path too long");
    return NULL;
  }
  memcpy(addr.sun_path, path, plen);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX)", errno);
  ssize_t n = sendto(fd, state, state_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, "sendto(NOTIFY_SOCKET)", err);
  CHECK(env, napi_get_boolean(env, true, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"getOriginalDst", NULL, get_original_dst, NULL, NULL, NULL, napi_default, NULL},
      {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
