# board_arch BOARD: sets ARCH, CROSS_COMPILE, KERNEL_IMAGE (make target) and
# KERNEL_IMAGE_PATH (relative to the build folder) for a board.
board_arch() {
    case $1 in
    qemu-x86_64)
        ARCH=x86_64 CROSS_COMPILE= KERNEL_IMAGE=bzImage KERNEL_IMAGE_PATH=arch/x86/boot/bzImage ;;
    qemu-arm64 | rpi4 | zynqmp)
        ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KERNEL_IMAGE=Image KERNEL_IMAGE_PATH=arch/arm64/boot/Image ;;
    *) echo "unknown board '$1'" >&2; return 2 ;;
    esac
}
