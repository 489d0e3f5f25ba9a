# The systrap stub's code: the source of the bytes in stub.rs (assembled with GNU as
# while developing, never at run time: `python3 sentry/src/platform/systrap/asm.py`
# prints the Rust array and the label offsets). Labels and constants must agree with
# stub.rs (its tests check them).
# Zygote: _start, zloop, zspawn. A new stub process: child, then its *syscall thread*
# (sys_start .. fork_fail), which never runs application code. Application threads:
# thread_start (cloned by the syscall thread), then the signal handler (handler ..
# restorer).
.intel_syntax noprefix
.equ STUB_BASE, 0x7ffffe000000
.equ ZSCRATCH,  0x7ffffe001000
.equ CMD,       0x7ffffe002000
.equ SYSRW,     0x7ffffe003000
.equ REGION,    0x7ffffe010000
.equ REGION_SIZE, 0x10000
.equ USER_TOP,  0x7ffffffff000
.equ ACT_CHLD,  0x7ffffe000a00
.equ FPROG,     0x7ffffe000a20
.equ FPROG2,    0x7ffffe000a30
# The command page (read-only in the stub): C_SEQ is the syscall thread's futex word.
.equ C_SEQ, 0
.equ C_COUNT, 4
.equ C_NR, 8
.equ C_EXPECT, 56
.equ C_STRIDE, 512
.equ C_CMDFD, 72
.equ C_CHILD_CTL, 80
.equ C_CHILD_CMD, 88
.equ C_CHILD_REGION, 96
.equ SLOTS_SIZE, 0x1fe0000
.equ THREAD_FLAGS, 0x1250b00
.equ OFF_ALTSTACK_BASE, 0x1000
.equ OFF_TID, 56
.equ C_ALTSTACK, 104
.equ C_ZERO, 128
.equ C_ONES, 136
.equ C_SIGACTION, 160
# The syscall thread's writable page (the application can write it too: nothing the
# sentry trusts lives there).
.equ R_DONE, 0
.equ R_STUB_SLEEPING, 4
.equ R_SENTRY_SLEEPING, 8
# An application thread's region, for the patched-syscall trampoline: its own
# address, the entry count, the register save area (sigcontext order: r8 .. r15,
# rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags) and the top of a small stack
# (all in the header page, outside the alternate signal stack).
.equ T_SELF, 40
.equ T_SEQ, 48
.equ T_REGS, 0xa00
.equ T_STACK, 0xf00
.equ STATE_FAST, 4
.equ STATE_FAST_RESUME, 5
.text
.globl _start
_start:
  mov r12d, 1
  mov eax, 11
  xor edi, edi
  movabs rsi, STUB_BASE
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 2
  mov eax, 11
  movabs rdi, STUB_BASE+0x1000
  movabs rsi, USER_TOP-(STUB_BASE+0x1000)
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 3
  mov eax, 9
  movabs rdi, ZSCRATCH
  mov esi, 0x1000
  mov edx, 3
  mov r10d, 0x32
  mov r8, -1
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 4
  mov eax, 157
  mov edi, 38
  mov esi, 1
  xor edx, edx
  xor r10d, r10d
  xor r8d, r8d
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 5
  mov eax, 13
  mov edi, 17
  movabs rsi, ACT_CHLD
  xor edx, edx
  mov r10d, 8
  syscall
  cmp rax, -4095
  jae fail
  movabs rbx, ZSCRATCH
zloop:
  lea rax, [rbx+64]
  mov [rbx+16], rax
  mov qword ptr [rbx+24], 1
  lea rax, [rbx+192]
  mov [rbx+32], rax
  mov qword ptr [rbx+40], 24
  mov qword ptr [rbx+48], 0
  lea rax, [rbx+128]
  mov [rbx+64], rax
  mov qword ptr [rbx+72], 8
  mov qword ptr [rbx+192], 0
  mov eax, 47
  xor edi, edi
  mov rsi, rbx
  mov edx, 0x40000000
  syscall
  test rax, rax
  jle zexit
  cmp qword ptr [rbx+192], 24
  je zspawn
  cmp qword ptr [rbx+192], 0
  jne zloop
  cmp rax, 8
  jne zloop
  mov eax, 61
  mov edi, [rbx+128]
  xor esi, esi
  mov edx, 0x40000000
  xor r10d, r10d
  syscall
  jmp zloop
zspawn:
  mov r14d, [rbx+208]
  mov r15d, [rbx+212]
  mov eax, 57
  syscall
  test rax, rax
  jz child
  mov eax, 3
  mov edi, r14d
  syscall
  mov eax, 3
  mov edi, r15d
  syscall
  jmp zloop
zexit:
  xor r12d, r12d
fail:
  mov edi, r12d
  mov eax, 231
  syscall
  hlt
# A new stub process (r14: its command memfd, r15: its control socket): the socket
# becomes fd 0, the memfd fd 1 (mapped read-only at CMD and, its second page,
# writable at SYSRW), nothing else stays open; every signal is blocked on this
# thread and handled by `handler` on the others; then the base filter.
child:
  mov r12d, 11
  mov eax, 157
  mov edi, 1
  mov esi, 9
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 12
  mov eax, 33
  mov edi, r15d
  xor esi, esi
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 13
  mov eax, 9
  movabs rdi, CMD
  mov esi, 0x1000
  mov edx, 1
  mov r10d, 0x11
  mov r8d, r14d
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 14
  mov eax, 9
  movabs rdi, SYSRW
  mov esi, 0x1000
  mov edx, 3
  mov r10d, 0x11
  mov r8d, r14d
  mov r9d, 0x1000
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 15
  mov eax, 33
  mov edi, r14d
  mov esi, 1
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 16
  mov eax, 436
  mov edi, 2
  mov esi, -1
  xor edx, edx
  syscall
  cmp rax, -4095
  jae fail
  mov r12d, 17
  mov eax, 11
  movabs rdi, ZSCRATCH
  mov esi, 0x1000
  syscall
  cmp rax, -4095
  jae fail
  movabs rbx, CMD
  movabs rbp, SYSRW
  mov r12d, 18
  mov eax, 14
  mov edi, 2
  lea rsi, [rbx+C_ONES]
  xor edx, edx
  mov r10d, 8
  syscall
  cmp rax, -4095
  jae fail
  mov r13d, 1
sigloop:
  mov eax, 13
  mov edi, r13d
  lea rsi, [rbx+C_SIGACTION]
  xor edx, edx
  mov r10d, 8
  syscall
  inc r13d
  cmp r13d, 65
  jne sigloop
  mov r12d, 19
  mov eax, 317
  mov edi, 1
  xor esi, esi
  movabs rdx, FPROG
  syscall
  cmp rax, -4095
  jae fail
# The syscall thread (rbx: CMD, rbp: SYSRW, r13d: the last command done). It reports
# in with its pid, then runs each command the sentry writes into the read-only
# command page and reports the result through the kernel: as the file offset of its
# command memfd, which only this thread's fd table reaches. A command is a batch of
# up to 4 calls (C_COUNT; call i at C_NR + i * C_STRIDE, r14 pointing at it), run in
# order until one fails or returns other than its non-zero C_EXPECT; the offset
# says which call ran last (bits 60-61), the command's sequence number (bits 48-59)
# and that call's result + 4096 (bits 0-47).
sys_start:
  mov eax, 39
  syscall
  mov r13d, [rbx+C_SEQ]
  lea r14, [rbx+C_NR]
report:
  lea rsi, [rax+0x1000]
  shl rsi, 16
  shr rsi, 16
  mov rdx, r14
  sub rdx, rbx
  shr edx, 9
  and edx, 3
  shl edx, 12
  mov ecx, r13d
  and ecx, 0xfff
  or edx, ecx
  shl rdx, 48
  or rsi, rdx
  mov edi, [rbx+C_CMDFD]
  xor edx, edx
  mov eax, 8
  syscall
  mov eax, r13d
  xchg [rbp+R_DONE], eax
  cmp dword ptr [rbp+R_SENTRY_SLEEPING], 0
  je sys_wait
  mov eax, 202
  lea rdi, [rbp+R_DONE]
  mov esi, 1
  mov edx, 1
  syscall
sys_wait:
  mov ecx, 0x12345678
sys_spin:
  mov eax, [rbx+C_SEQ]
  cmp eax, r13d
  jne sys_cmd
  pause
  dec ecx
  jnz sys_spin
  mov eax, 1
  xchg [rbp+R_STUB_SLEEPING], eax
  mov eax, 202
  mov rdi, rbx
  xor esi, esi
  mov edx, r13d
  xor r10d, r10d
  syscall
  mov dword ptr [rbp+R_STUB_SLEEPING], 0
  jmp sys_wait
sys_cmd:
  mov r13d, eax
  lea r14, [rbx+C_NR]
  mov r15d, [rbx+C_COUNT]
  dec r15d
  and r15d, 3
sys_next:
  mov rax, [r14]
  mov r12, rax
  mov rdi, [r14+8]
  mov rsi, [r14+16]
  mov rdx, [r14+24]
  mov r10, [r14+32]
  mov r8, [r14+40]
  mov r9, [r14+48]
  syscall
sys_ret:
  cmp r12, 56
  je sys_clone
  cmp rax, -4095
  jae report
  mov rcx, [r14+C_EXPECT]
  test rcx, rcx
  jz sys_more
  cmp rax, rcx
  jne report
sys_more:
  test r15d, r15d
  jz report
  dec r15d
  add r14, C_STRIDE
  jmp sys_next
# A clone ends its batch.
sys_clone:
  test rax, rax
  jz cloned
  js report
  test edi, 0x10000
  jnz report
# The parent of a fork: the fds received for the child are the child's now.
  mov r15, rax
  mov eax, 3
  mov rdi, [rbx+C_CHILD_CMD]
  syscall
  mov eax, 3
  mov rdi, [rbx+C_CHILD_CTL]
  syscall
  mov eax, 3
  mov rdi, [rbx+C_CHILD_REGION]
  syscall
  mov rax, r15
  jmp report
cloned:
  test edi, 0x10000
  jnz thread_start
# The child of a fork command: a copy of the syscall thread alone. Dies with the
# zygote, takes its own command memfd and control socket (received by the parent
# just before) at fds 1 and 0, unmaps the parent's regions, maps the region of its
# first application thread at slot 0, and reports in like a new stub.
  mov eax, 157
  mov edi, 1
  mov esi, 9
  syscall
prctl_ret:
  mov r14, [rbx+C_CHILD_CMD]
  mov r15, [rbx+C_CHILD_CTL]
  mov r13, [rbx+C_CHILD_REGION]
  mov eax, 9
  mov rdi, rbx
  mov esi, 0x1000
  mov edx, 1
  mov r10d, 0x11
  mov r8d, r14d
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 9
  mov rdi, rbp
  mov esi, 0x1000
  mov edx, 3
  mov r10d, 0x11
  mov r8d, r14d
  mov r9d, 0x1000
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 11
  movabs rdi, REGION
  mov esi, SLOTS_SIZE
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 9
  movabs rdi, REGION
  mov esi, REGION_SIZE
  mov edx, 3
  mov r10d, 0x11
  mov r8d, r13d
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 33
  mov edi, r15d
  xor esi, esi
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 33
  mov edi, r14d
  mov esi, 1
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 436
  mov edi, 2
  mov esi, -1
  xor edx, edx
  syscall
  cmp rax, -4095
  jae fork_fail
# Its first application thread, at slot 0, cloned here rather than on a command: one
# round trip fewer per fork. The report carries both ids (pid | tid << 24).
  mov eax, 56
  mov edi, THREAD_FLAGS
  movabs rsi, REGION+OFF_ALTSTACK_BASE
  xor edx, edx
  movabs r10, REGION+OFF_TID
  xor r8d, r8d
  syscall
self_clone_ret:
  test rax, rax
  jz thread_start
  cmp rax, -4095
  jae fork_fail
  mov r14, rax
  mov eax, 39
  syscall
  shl r14, 24
  or rax, r14
  mov r13d, [rbx+C_SEQ]
  lea r14, [rbx+C_NR]
  jmp report
fork_fail:
  mov edi, 17
  mov eax, 231
  syscall
  hlt
# A new application thread (rsp: the top of its region's header, which is the
# bottom of its alternate stack): no fds, its alternate stack, the application
# filter, signals unblocked, then "ready".
thread_start:
  mov eax, 436
  xor edi, edi
  mov esi, -1
  xor edx, edx
  syscall
  cmp rax, -4095
  jae thread_fail
  mov eax, 131
  lea rdi, [rbx+C_ALTSTACK]
  xor esi, esi
  syscall
  cmp rax, -4095
  jae thread_fail
# The thread's gs base is its region (whose T_SELF word holds its own address): how
# the patched-syscall trampoline finds it without a signal.
  mov rsi, rsp
  and rsi, -REGION_SIZE
  mov [rsi+T_SELF], rsi
  mov edi, 0x1001
  mov eax, 158
  syscall
  cmp rax, -4095
  jae thread_fail
  mov eax, 317
  mov edi, 1
  xor esi, esi
  movabs rdx, FPROG2
  syscall
  cmp rax, -4095
  jae thread_fail
  mov eax, 14
  mov edi, 2
  lea rsi, [rbx+C_ZERO]
  xor edx, edx
  mov r10d, 8
  syscall
ready:
  ud2
thread_fail:
  xor edi, edi
  mov eax, 60
  syscall
  hlt
# The signal handler of application threads.
handler:
  mov rbx, rsp
  and rbx, -REGION_SIZE
  mov [rbx+16], rdi
  mov [rbx+24], rsi
  mov [rbx+32], rdx
hreport:
  mov eax, 1
  xchg [rbx], eax
  cmp dword ptr [rbx+4], 0
  je hwait
  mov eax, 202
  mov rdi, rbx
  mov esi, 1
  mov edx, 1
  syscall
  jmp hsleep
hwait:
  mov ecx, 0x12345678
spin:
  mov eax, [rbx]
  cmp eax, 1
  jne got
  cmp dword ptr [rbx+12], 0
  jne hsleep
  pause
  dec ecx
  jnz spin
hsleep:
  mov eax, 1
  xchg [rbx+8], eax
  mov eax, 202
  mov rdi, rbx
  xor esi, esi
  mov edx, 1
  xor r10d, r10d
  syscall
  mov dword ptr [rbx+8], 0
  jmp hwait
got:
  cmp eax, 2
  je resume
  cmp eax, 3
  jne hreport
request:
  mov rax, [rbx+64]
  mov rdi, [rbx+72]
  mov rsi, [rbx+80]
  mov rdx, [rbx+88]
  mov r10, [rbx+96]
  mov r8, [rbx+104]
  mov r9, [rbx+112]
  syscall
  mov [rbx+120], rax
  jmp hreport
resume:
  ret
restorer:
  mov eax, 15
  syscall
  hlt
# The patched-syscall trampoline. A patched site jumps to its entry in the patch
# table, which runs the instruction the patch displaced, sets rcx to the return
# address (as `syscall` does) and jumps here with rax the system call number. Until
# the commit (the xchg) only r11, rsp, rcx and rax change, each saved first, and no
# flag: the sentry turns a signal taken there into the system call itself. After it
# the sentry owns the thread: it answers STATE_FAST_RESUME with the result in the
# rax slot, or anything else, and then the thread traps (`tramp_trap`) so that the
# sentry gets a full signal frame.
tramp:
  mov r11, qword ptr gs:[T_SELF]
  mov [r11+T_REGS+15*8], rsp
tramp_lea:
  lea rsp, [r11+T_STACK]
  pushfq
  mov [r11+T_REGS+0*8], r8
  mov [r11+T_REGS+1*8], r9
  mov [r11+T_REGS+2*8], r10
  mov [r11+T_REGS+4*8], r12
  mov [r11+T_REGS+5*8], r13
  mov [r11+T_REGS+6*8], r14
  mov [r11+T_REGS+7*8], r15
  mov [r11+T_REGS+8*8], rdi
  mov [r11+T_REGS+9*8], rsi
  mov [r11+T_REGS+10*8], rbp
  mov [r11+T_REGS+11*8], rbx
  mov [r11+T_REGS+12*8], rdx
  mov [r11+T_REGS+13*8], rax
  mov [r11+T_REGS+14*8], rcx
  mov [r11+T_REGS+16*8], rcx
tramp_rcx:
  mov rcx, [rsp]
  mov [r11+T_REGS+17*8], rcx
  mov [r11+T_REGS+3*8], rcx
  mov rax, [r11+T_SEQ]
tramp_rax:
  lea rax, [rax+1]
  mov [r11+T_SEQ], rax
  mov eax, STATE_FAST
tramp_commit:
  xchg [r11], eax
tramp_post:
  mov rbx, r11
  cmp dword ptr [rbx+4], 0
  je twait
  mov eax, 202
  mov rdi, rbx
  mov esi, 1
  mov edx, 1
  syscall
  jmp tsleep
twait:
  mov ecx, 0x12345678
tspin:
  mov eax, [rbx]
  cmp eax, STATE_FAST
  jne tgot
  cmp dword ptr [rbx+12], 0
  jne tsleep
  pause
  dec ecx
  jnz tspin
tsleep:
  mov eax, 1
  xchg [rbx+8], eax
  mov eax, 202
  mov rdi, rbx
  xor esi, esi
  mov edx, STATE_FAST
  xor r10d, r10d
  syscall
  mov dword ptr [rbx+8], 0
  jmp twait
tgot:
  cmp eax, STATE_FAST_RESUME
  jne tramp_trap
  mov r8, [rbx+T_REGS+0*8]
  mov r9, [rbx+T_REGS+1*8]
  mov r10, [rbx+T_REGS+2*8]
  mov r12, [rbx+T_REGS+4*8]
  mov r13, [rbx+T_REGS+5*8]
  mov r14, [rbx+T_REGS+6*8]
  mov r15, [rbx+T_REGS+7*8]
  mov rdi, [rbx+T_REGS+8*8]
  mov rsi, [rbx+T_REGS+9*8]
  mov rbp, [rbx+T_REGS+10*8]
  mov rdx, [rbx+T_REGS+12*8]
  mov rax, [rbx+T_REGS+13*8]
  popfq
  mov rsp, [rbx+T_REGS+15*8]
  mov rcx, [rbx+T_REGS+16*8]
  mov r11, [rbx+T_REGS+17*8]
  mov rbx, [rbx+T_REGS+11*8]
  jmp rcx
tramp_trap:
  ud2
tramp_end:
