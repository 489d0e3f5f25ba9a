// The policy rules a network namespace starts with (RTM_GETRULE dumps, what
// `ip rule` reads): IPv4 0/32766/32767 (local, main, default), IPv6 0/32766,
// both for AF_UNSPEC; each message's fib_rule_hdr and attributes printed, in a
// fresh network namespace natively (net_common_ns.h). Neighbour dumps
// (RTM_GETNEIGH) of a namespace holding only loopback are empty.
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include "net_common_ns.h"

static void dump(int s, int type, unsigned char family, const char *what)
{
    struct {
        struct nlmsghdr h;
        union {
            struct fib_rule_hdr r;
            struct ndmsg n;
        } b;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = NLMSG_LENGTH(type == RTM_GETRULE ? sizeof req.b.r : sizeof req.b.n);
    req.h.nlmsg_type = type;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 7;
    if (type == RTM_GETRULE)
        req.b.r.family = family;
    else
        req.b.n.ndm_family = family;
    printf("== %s\n", what);
    if (send(s, &req, req.h.nlmsg_len, 0) < 0) {
        printf("send: %s\n", strerror(errno));
        return;
    }
    static char buf[65536];
    for (;;) {
        long n = recv(s, buf, sizeof buf, 0);
        if (n < 0) {
            printf("recv: %s\n", strerror(errno));
            return;
        }
        for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) {
                printf("done seq %u\n", h->nlmsg_seq);
                return;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                printf("error %d\n", ((struct nlmsgerr *)NLMSG_DATA(h))->error);
                return;
            }
            printf("type %d flags %#x seq %u:", h->nlmsg_type, h->nlmsg_flags, h->nlmsg_seq);
            unsigned char *b = NLMSG_DATA(h);
            for (size_t i = 0; i < sizeof(struct fib_rule_hdr); i++)
                printf(" %02x", b[i]);
            printf("\n");
            int left = h->nlmsg_len - NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
            for (struct rtattr *a = (void *)(b + sizeof(struct fib_rule_hdr)); RTA_OK(a, left);
                 a = RTA_NEXT(a, left)) {
                printf("  attr %d:", a->rta_type);
                for (size_t i = 0; i < RTA_PAYLOAD(a); i++)
                    printf(" %02x", ((unsigned char *)RTA_DATA(a))[i]);
                printf("\n");
            }
        }
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    fresh_netns();
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    dump(s, RTM_GETRULE, AF_INET, "rules IPv4");
    dump(s, RTM_GETRULE, AF_INET6, "rules IPv6");
    dump(s, RTM_GETRULE, AF_UNSPEC, "rules all");
    dump(s, RTM_GETNEIGH, AF_UNSPEC, "neighbours");
    close(s);
    return 0;
}
