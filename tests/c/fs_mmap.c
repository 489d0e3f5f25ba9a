// A MAP_SHARED mapping of a tmpfs file and read()/write() see the same bytes, also
// across truncate and extend.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
    char dir[] = "/dev/shm/fs_mmap_XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("setup");
        return 1;
    }
    int fd = open("f", O_CREAT | O_RDWR, 0644);
    ftruncate(fd, 8192);
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", strerrorname_np(errno));
        return 0;
    }
    memcpy(p + 4090, "through-map", 11);
    char buf[16] = {0};
    pread(fd, buf, 11, 4090);
    printf("read sees %s\n", buf);
    pwrite(fd, "by-write", 8, 100);
    printf("map sees %.8s\n", p + 100);
    ftruncate(fd, 4096);
    ftruncate(fd, 8192);
    printf("after shrink+extend page 2 zero %d\n", p[4096] == 0 && p[5000] == 0);
    printf("page 1 kept %.6s\n", p + 4090);
    char *q = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    p[4100] = 'Z';
    printf("second mapping sees %c\n", q[4]);
    munmap(p, 8192);
    munmap(q, 4096);
    close(fd);
    unlink("f");
    chdir("/");
    rmdir(dir);
    return 0;
}
