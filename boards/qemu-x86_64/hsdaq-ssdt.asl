/*
 * hsdaq sensor for QEMU x86_64: an ACPI device that carries the device-tree
 * compatible and properties (_HID "PRP0001" + _DSD), so the driver binds
 * through its OF match table exactly as on a device-tree board.
 *
 *   iasl -tc hsdaq-ssdt.asl   ->  hsdaq-ssdt.aml
 *   qemu-system-x86_64 ... -acpitable file=hsdaq-ssdt.aml
 */
DefinitionBlock ("", "SSDT", 2, "HSDAQ", "SENSOR", 0x00000001)
{
    Scope (\_SB)
    {
        Device (HSD0)
        {
            Name (_HID, "PRP0001")
            Name (_UID, 0)
            Name (_STA, 0x0F)
            Name (_DSD, Package () {
                ToUUID ("daffd814-6eba-4d8c-8a91-bc9bbf4aa301"),
                Package () {
                    Package () { "compatible", "hsdaq,virtual-sensor" },
                    Package () { "hsdaq,rate-hz", 48000 },
                    Package () { "hsdaq,channels", 6 },
                    Package () { "hsdaq,format", "s32" },
                    Package () { "hsdaq,block-bytes", 8192 },
                    Package () { "hsdaq,buffer-bytes", 1048576 },
                }
            })
        }
    }
}
