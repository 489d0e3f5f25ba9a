# The systrap stub's code: the source of the bytes in stub.rs (assembled with GNU as
# while developing, never at run time). Labels and constants must agree with stub.rs
# (its tests check them). Zygote: _start, zloop. New stub: child. Signal handler:
# handler .. restorer. Children of a clone request: cloned .. thread_fail.
.intel_syntax noprefix
.equ STUB_BASE, 0x7ffffe000000
.equ ZSCRATCH,  0x7ffffe001000
.equ REGION,    0x7ffffe010000
.equ REGION_SIZE, 0x10000
.equ USER_TOP,  0x7ffffffff000
.equ FPROG,     0x7ffffe0007f0
.equ ACT_CHLD,  0x7ffffe0007d0
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
  mov eax, 3
  mov edi, r15d
  syscall
  mov r12d, 13
  mov eax, 9
  movabs rdi, REGION
  mov esi, REGION_SIZE
  mov edx, 3
  mov r10d, 0x11
  mov r8d, r14d
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fail
  mov eax, 3
  mov edi, r14d
  syscall
  mov r12d, 14
  mov eax, 11
  movabs rdi, ZSCRATCH
  mov esi, 0x1000
  syscall
  cmp rax, -4095
  jae fail
  movabs rbx, REGION
  mov r12d, 15
  mov eax, 131
  lea rdi, [rbx+256]
  xor esi, esi
  syscall
  cmp rax, -4095
  jae fail
  mov r13d, 1
sigloop:
  mov eax, 13
  mov edi, r13d
  lea rsi, [rbx+288]
  xor edx, edx
  mov r10d, 8
  syscall
  inc r13d
  cmp r13d, 65
  jne sigloop
  mov eax, 39
  syscall
  mov [rbx+40], rax
  mov r12d, 16
  mov eax, 317
  mov edi, 1
  xor esi, esi
  movabs rdx, FPROG
  syscall
  cmp rax, -4095
  jae fail
ready:
  ud2
handler:
  mov rbx, rsp
  and rbx, -REGION_SIZE
  mov [rbx+16], rdi
  mov [rbx+24], rsi
  mov [rbx+32], rdx
report:
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
  je request
  cmp eax, 4
  jne report
  mov eax, 56
  mov rdi, [rbx+72]
  mov rsi, [rbx+80]
  mov rdx, [rbx+88]
  mov r10, [rbx+96]
  mov r8, [rbx+104]
  syscall
clone_ret:
  test rax, rax
  jz cloned
  mov [rbx+120], rax
  jmp report
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
  jmp report
resume:
  ret
restorer:
  mov eax, 15
  syscall
  hlt
cloned:
  test edi, 0x100
  jnz thread_start
  mov eax, 157
  mov edi, 1
  mov esi, 9
  syscall
prctl_ret:
  mov r13d, [rbx+60]
  mov eax, 47
  mov edi, r13d
  lea rsi, [rbx+512]
  xor edx, edx
  syscall
  cmp rax, 8
  jne fork_fail
  cmp qword ptr [rbx+768], 24
  jne fork_fail
  mov r14d, [rbx+784]
  mov r15d, [rbx+788]
  mov eax, 9
  mov rdi, rbx
  mov esi, REGION_SIZE
  mov edx, 3
  mov r10d, 0x11
  mov r8d, r14d
  xor r9d, r9d
  syscall
  cmp rax, -4095
  jae fork_fail
  mov eax, 3
  mov edi, r14d
  syscall
  mov eax, 3
  mov edi, r13d
  syscall
  mov [rbx+60], r15d
  jmp unblock
thread_start:
  lea rbx, [rsp-1]
  and rbx, -REGION_SIZE
  mov eax, 131
  lea rdi, [rbx+256]
  xor esi, esi
  syscall
  cmp rax, -4095
  jae thread_fail
unblock:
  mov eax, 14
  mov edi, 2
  lea rsi, [rbx+48]
  xor edx, edx
  mov r10d, 8
  syscall
  jmp ready
fork_fail:
  mov edi, 17
  mov eax, 231
  syscall
  hlt
thread_fail:
  xor edi, edi
  mov eax, 60
  syscall
  hlt
