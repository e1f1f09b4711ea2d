# A function whose CFA is kept in rbx: no compact encoding fits it, its FDE stays in __eh_frame.
	.section	__TEXT,__text,regular,pure_instructions
	.globl	_odd
	.p2align	4, 0x90
_odd:
	.cfi_startproc
	pushq	%rbx
	.cfi_def_cfa_offset 16
	.cfi_offset %rbx, -16
	movq	%rsp, %rbx
	.cfi_def_cfa_register %rbx
	subq	$64, %rsp
	callq	_leaf
	movq	%rbx, %rsp
	popq	%rbx
	retq
	.cfi_endproc
