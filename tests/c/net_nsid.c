// RTM_GETNSID naming the namespace by process (NETNSA_PID: this process, and one
// that does not exist), by an id nobody has (NETNSA_NSID), and by nothing: the
// answer's NETNSA_NSID (-1: no id assigned, as a namespace has none for itself) or
// the error (ESRCH, ENOENT, EINVAL), as rtnl_net_getid gives them. Natively in a
// fresh network namespace (net_common_ns.h).
#define _GNU_SOURCE
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include "net_common_ns.h"

static void ask(int fd, const char *label, int attr, int value)
{
    struct {
        struct nlmsghdr h;
        struct rtgenmsg g;
        char pad[3];
        struct nlattr a;
        int v;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_type = RTM_GETNSID;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.h.nlmsg_seq = 1;
    req.g.rtgen_family = AF_UNSPEC;
    int len = NLMSG_LENGTH(sizeof(struct rtgenmsg)) + 3;
    if (attr) {
        req.a.nla_type = attr;
        req.a.nla_len = NLA_HDRLEN + 4;
        req.v = value;
        len += NLA_HDRLEN + 4;
    }
    req.h.nlmsg_len = len;
    send(fd, &req, len, 0);
    char buf[4096];
    int n = recv(fd, buf, sizeof buf, 0);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (n < 0 || !NLMSG_OK(h, n)) {
        printf("%s: recv %d\n", label, n < 0 ? errno : 0);
        return;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
        printf("%s: error %d\n", label, ((struct nlmsgerr *)NLMSG_DATA(h))->error);
        return;
    }
    printf("%s: type %d", label, h->nlmsg_type);
    struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct rtgenmsg)));
    int left = h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct rtgenmsg)));
    while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left) {
        printf(" attr %d = %d", a->nla_type, *(int *)((char *)a + NLA_HDRLEN));
        int step = NLA_ALIGN(a->nla_len);
        left -= step;
        a = (struct nlattr *)((char *)a + step);
    }
    printf("\n");
}

int main(void)
{
    fresh_netns();
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    ask(fd, "by own pid", NETNSA_PID, getpid());
    ask(fd, "by missing pid", NETNSA_PID, 0x3ffffff0);
    ask(fd, "by unknown id", NETNSA_NSID, 4242);
    ask(fd, "by nothing", 0, 0);
    return 0;
}
