// exec of a minimal hand-made ELF: one PT_LOAD segment mapping the whole file, no
// section headers, no PT_GNU_STACK, entry right after the program header; it writes
// "hi" and exits 42. A second one has a bss (p_memsz > p_filesz) it must see zeroed.
// e2e: stdout=tiny: hi
// e2e: stdout=tiny status: 42
// e2e: stdout=bss: hi
// e2e: stdout=bss status: 0
// e2e: stdout=no program headers: execve: Exec format error
// e2e: stdout=no program headers status: 127
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const unsigned char code[] = {
    0xb8, 0x01, 0x00, 0x00, 0x00,             /* mov eax, 1 (write) */
    0xbf, 0x01, 0x00, 0x00, 0x00,             /* mov edi, 1 */
    0x48, 0x8d, 0x35, 0x13, 0x00, 0x00, 0x00, /* lea rsi, [rip + 19] (msg) */
    0xba, 0x03, 0x00, 0x00, 0x00,             /* mov edx, 3 */
    0x0f, 0x05,                               /* syscall */
    0xb8, 0x3c, 0x00, 0x00, 0x00,             /* mov eax, 60 (exit) */
    0xbf, 0x2a, 0x00, 0x00, 0x00,             /* mov edi, 42 */
    0x0f, 0x05,                               /* syscall */
    'h', 'i', '\n',
};

/* exit(sum of 4096 bss bytes): 0 when the bss is zero. */
static const unsigned char bss_code[] = {
    0xb8, 0x01, 0x00, 0x00, 0x00,             /* mov eax, 1 */
    0xbf, 0x01, 0x00, 0x00, 0x00,             /* mov edi, 1 */
    0x48, 0x8d, 0x35, 0x26, 0x00, 0x00, 0x00, /* lea rsi, [rip + 38] (msg) */
    0xba, 0x03, 0x00, 0x00, 0x00,             /* mov edx, 3 */
    0x0f, 0x05,                               /* syscall */
    0x48, 0x8d, 0x35, 0x1c, 0x00, 0x00, 0x00, /* lea rsi, [rip + 28] (bss) */
    0x31, 0xff,                               /* xor edi, edi */
    0xb9, 0x00, 0x10, 0x00, 0x00,             /* mov ecx, 4096 */
    0x0f, 0xb6, 0x06,                         /* l: movzx eax, byte [rsi] */
    0x01, 0xc7,                               /* add edi, eax */
    0x48, 0xff, 0xc6,                         /* inc rsi */
    0xe2, 0xf6,                               /* loop l */
    0xb8, 0x3c, 0x00, 0x00, 0x00,             /* mov eax, 60 */
    0x0f, 0x05,                               /* syscall */
    'h', 'i', '\n', 0,                        /* msg; bss starts right after */
};

static int make(const char *path, const unsigned char *c, size_t n, size_t extra_mem, int phnum) {
    unsigned char img[512];
    memset(img, 0, sizeof img);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    Elf64_Phdr *ph = (Elf64_Phdr *)(img + sizeof *eh);
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = ET_EXEC;
    eh->e_machine = EM_X86_64;
    eh->e_version = EV_CURRENT;
    size_t off = sizeof *eh + sizeof *ph;
    eh->e_entry = 0x400000 + off;
    eh->e_phoff = sizeof *eh;
    eh->e_ehsize = sizeof *eh;
    eh->e_phentsize = sizeof *ph;
    eh->e_phnum = phnum;
    ph->p_type = PT_LOAD;
    ph->p_flags = PF_R | PF_W | PF_X;
    ph->p_offset = 0;
    ph->p_vaddr = ph->p_paddr = 0x400000;
    ph->p_filesz = off + n;
    ph->p_memsz = off + n + extra_mem;
    ph->p_align = 0x1000;
    memcpy(img + off, c, n);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (fd < 0 || write(fd, img, off + n) != (ssize_t)(off + n))
        return -1;
    return close(fd);
}

static void run(const char *name, const char *path) {
    fflush(stdout);
    printf("%s: ", name);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {(char *)path, NULL};
        execve(path, argv, argv + 1);
        printf("execve: %s\n", strerror(errno));
        fflush(stdout);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    printf("%s status: %d\n", name, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int main(void) {
    if (make("tiny-elf", code, sizeof code, 0, 1) ||
        make("bss-elf", bss_code, sizeof bss_code, 4096, 1) ||
        make("nophdr-elf", code, sizeof code, 0, 0)) {
        perror("make");
        return 1;
    }
    run("tiny", "./tiny-elf");
    run("bss", "./bss-elf");
    run("no program headers", "./nophdr-elf");
    return 0;
}
