"""Generate the emulation overlay's ``.hwh`` from the register map (``make emu-hwh``).

A ``.hwh`` (hardware handoff) is the XML that Vivado writes next to a bitstream; PYNQ parses it
into ``ip_dict`` / ``register_map`` and binds drivers by VLNV. Until someone builds the real one
with ``make hwh`` (Vivado), this module writes the minimal equivalent for the PYNQ-Z2 design of
``overlay/bd``: the Zynq-7000 PS (FCLK0 at 100 MHz, ``M_AXI_GP0`` master, ``S_AXI_HP0`` slave)
and one ``ant_gemm`` IP (VLNV :data:`antq.core.regmap.VLNV`) whose ``s_axi_control`` registers come
from :func:`antq.core.regmap.registers` and whose ``m_axi_gmem`` master reaches DDR through HP0.

The output is deterministic (no timestamp), so a test can check that the committed
``overlay/emulation/ant.hwh`` is up to date, and says in its header that it is not from Vivado.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..core import arch, regmap
from .paths import source_dir

INSTANCE = f"{regmap.TOP}_0"
PS = "processing_system7_0"
CTRL_BASE, CTRL_RANGE = 0x4000_0000, 0x1_0000
"""Where Vivado's address editor puts the first M_AXI_GP0 peripheral (64 KiB segment)."""
DDR_BASE, DDR_HIGH = 0x0000_0000, 0x1FFF_FFFF
"""PYNQ-Z2: 512 MiB of DDR behind S_AXI_HP0 (HP0_DDR_LOWOCM)."""
FCLK0_MHZ, IO_PLL_MHZ = 100, 1000
FCLK0_DIVISORS = (5, 2)
"""IO PLL 1000 MHz / 5 / 2 = FCLK0 100 MHz (the PYNQ-Z2 base overlay's setting)."""


def _prop(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "PROPERTY", NAME=name, VALUE=str(value))


def _register(parent: ET.Element, reg: regmap.Register) -> None:
    r = ET.SubElement(parent, "REGISTER", NAME=reg.name)
    _prop(r, "DESCRIPTION", reg.doc)
    _prop(r, "ADDRESS_OFFSET", hex(reg.offset))
    _prop(r, "SIZE", 32)
    _prop(r, "ACCESS", reg.access)
    _prop(r, "IS_ENABLED", "true")
    _prop(r, "RESET_VALUE", "0x0")
    fields = ET.SubElement(r, "FIELDS")
    for f in reg.fields or (regmap.Field(reg.name, 0, 32, reg.access),):
        fe = ET.SubElement(fields, "FIELD", NAME=f.name)
        _prop(fe, "DESCRIPTION", "")
        _prop(fe, "ADDRESS_OFFSET", f.bit)
        _prop(fe, "ACCESS", f.access)
        _prop(fe, "MODIFIED_READ_VALUES", "")
        _prop(fe, "WRITE_CONSTRAINT", "0")
        _prop(fe, "READ_ACTION", "modify" if f.name in ("AP_DONE", "AP_READY") else "")
        _prop(fe, "BIT_OFFSET", f.bit)
        _prop(fe, "BIT_WIDTH", f.width)


def _params(parent: ET.Element, params: dict[str, object]) -> None:
    pe = ET.SubElement(parent, "PARAMETERS")
    for k, v in params.items():
        ET.SubElement(pe, "PARAMETER", NAME=k, VALUE=str(v))


def _accelerator(modules: ET.Element, cfg: arch.ArrayConfig) -> None:
    m = ET.SubElement(modules, "MODULE", COREREVISION="1", FULLNAME=f"/{INSTANCE}",
                      HWVERSION=regmap.IP_REVISION, INSTANCE=INSTANCE, IPTYPE="PERIPHERAL", IS_ENABLE="1",
                      MODCLASS="PERIPHERAL", MODTYPE=regmap.TOP, VLNV=regmap.VLNV)
    ET.SubElement(m, "DOCUMENTS")
    blocks = ET.SubElement(m, "ADDRESSBLOCKS")
    blk = ET.SubElement(blocks, "ADDRESSBLOCK", ACCESS="read-write", INTERFACE="s_axi_control", NAME="Reg",
                        RANGE=str(1 << regmap.address_bits()), USAGE="register")
    regs = ET.SubElement(blk, "REGISTERS")
    for reg in regmap.registers():
        _register(regs, reg)
    _params(m, {
        "C_S_AXI_CONTROL_ADDR_WIDTH": regmap.address_bits(), "C_S_AXI_CONTROL_DATA_WIDTH": 32,
        "C_M_AXI_GMEM_ADDR_WIDTH": 64, "C_M_AXI_GMEM_DATA_WIDTH": cfg.bus_bits,
        "Component_Name": f"ant_{INSTANCE}_0", "clk_period": 1000 // FCLK0_MHZ, "machine": 64,
        "EDK_IPTYPE": "PERIPHERAL", "ANT_ROWS": cfg.rows, "ANT_COLS": cfg.cols,
        "ANT_ACC_BITS": cfg.acc_bits, "ANT_IP_VERSION": regmap.IP_VERSION,
        "C_S_AXI_CONTROL_BASEADDR": f"0x{CTRL_BASE:08X}",
        "C_S_AXI_CONTROL_HIGHADDR": f"0x{CTRL_BASE + CTRL_RANGE - 1:08X}",
    })
    ports = ET.SubElement(m, "PORTS")
    clk = ET.SubElement(ports, "PORT", CLKFREQUENCY=str(FCLK0_MHZ * 1_000_000), DIR="I", NAME="ap_clk",
                        SIGIS="clk", SIGNAME=f"{PS}_FCLK_CLK0")
    ET.SubElement(ET.SubElement(clk, "CONNECTIONS"), "CONNECTION", INSTANCE=PS, PORT="FCLK_CLK0")
    ET.SubElement(ports, "PORT", DIR="I", NAME="ap_rst_n", SIGIS="rst")
    ET.SubElement(ports, "PORT", DIR="O", NAME="interrupt", SIGIS="INTERRUPT", SENSITIVITY="LEVEL_HIGH")
    buses = ET.SubElement(m, "BUSINTERFACES")
    ET.SubElement(buses, "BUSINTERFACE", BUSNAME=f"{PS}_M_AXI_GP0", DATAWIDTH="32", NAME="s_axi_control",
                  TYPE="SLAVE", VLNV="xilinx.com:interface:aximm:1.0")
    ET.SubElement(buses, "BUSINTERFACE", BUSNAME=f"{INSTANCE}_m_axi_gmem", DATAWIDTH=str(cfg.bus_bits),
                  NAME="m_axi_gmem", TYPE="MASTER", VLNV="xilinx.com:interface:aximm:1.0")
    mm = ET.SubElement(m, "MEMORYMAP")
    ET.SubElement(mm, "MEMRANGE", ADDRESSBLOCK="HP0_DDR_LOWOCM", BASENAME="C_BASEADDR",
                  BASEVALUE=f"0x{DDR_BASE:08X}", HIGHNAME="C_HIGHADDR", HIGHVALUE=f"0x{DDR_HIGH:08X}",
                  INSTANCE=PS, IS_DATA="TRUE", IS_INSTRUCTION="TRUE", MASTERBUSINTERFACE="m_axi_gmem",
                  MEMTYPE="MEMORY", SLAVEBUSINTERFACE="S_AXI_HP0")


def _processing_system(modules: ET.Element) -> None:
    m = ET.SubElement(modules, "MODULE", CONFIGURABLE="TRUE", COREREVISION="6", FULLNAME=f"/{PS}",
                      HWVERSION="5.5", INSTANCE=PS, IPTYPE="PERIPHERAL", IS_ENABLE="1", IS_PL="FALSE",
                      MODTYPE="processing_system7", VLNV="xilinx.com:ip:processing_system7:5.5")
    ET.SubElement(m, "DOCUMENTS")
    params: dict[str, object] = {"PCW_USE_M_AXI_GP0": 1, "PCW_USE_S_AXI_HP0": 1,
                                 "PCW_S_AXI_HP0_DATA_WIDTH": 64, "C_FCLK_CLK0_BUF": "TRUE"}
    for i in range(4):
        on = i == 0
        params[f"PCW_FPGA{i}_PERIPHERAL_FREQMHZ"] = FCLK0_MHZ if on else 50
        params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = FCLK0_DIVISORS[0] if on else 1
        params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = FCLK0_DIVISORS[1] if on else 1
        params[f"PCW_FCLK{i}_PERIPHERAL_CLKSRC"] = "IO PLL"
        params[f"PCW_FPGA_FCLK{i}_ENABLE"] = int(on)
    params["PCW_IOPLL_CTRL_FBDIV"] = IO_PLL_MHZ // 50
    params["EDK_IPTYPE"] = "PERIPHERAL"
    _params(m, params)
    ports = ET.SubElement(m, "PORTS")
    clk = ET.SubElement(ports, "PORT", CLKFREQUENCY=str(FCLK0_MHZ * 1_000_000), DIR="O", NAME="FCLK_CLK0",
                        SIGIS="clk", SIGNAME=f"{PS}_FCLK_CLK0")
    ET.SubElement(ET.SubElement(clk, "CONNECTIONS"), "CONNECTION", INSTANCE=INSTANCE, PORT="ap_clk")
    buses = ET.SubElement(m, "BUSINTERFACES")
    ET.SubElement(buses, "BUSINTERFACE", BUSNAME=f"{PS}_M_AXI_GP0", DATAWIDTH="32", NAME="M_AXI_GP0",
                  TYPE="MASTER", VLNV="xilinx.com:interface:aximm:1.0")
    ET.SubElement(buses, "BUSINTERFACE", BUSNAME=f"{INSTANCE}_m_axi_gmem", DATAWIDTH="64", NAME="S_AXI_HP0",
                  TYPE="SLAVE", VLNV="xilinx.com:interface:aximm:1.0")
    mm = ET.SubElement(m, "MEMORYMAP")
    ET.SubElement(mm, "MEMRANGE", ADDRESSBLOCK="Reg", BASENAME="C_S_AXI_CONTROL_BASEADDR",
                  BASEVALUE=f"0x{CTRL_BASE:08X}", HIGHNAME="C_S_AXI_CONTROL_HIGHADDR",
                  HIGHVALUE=f"0x{CTRL_BASE + CTRL_RANGE - 1:08X}", INSTANCE=INSTANCE, IS_DATA="TRUE",
                  IS_INSTRUCTION="TRUE", MASTERBUSINTERFACE="M_AXI_GP0", MEMTYPE="REGISTER",
                  SLAVEBUSINTERFACE="s_axi_control")


def generate(cfg: arch.ArrayConfig = arch.DEFAULT) -> str:
    """The ``.hwh`` text of the emulated PYNQ-Z2 overlay for an array configuration."""
    root = ET.Element("EDKSYSTEM", EDWVERSION="1.2", TIMESTAMP="none (generated)",
                      VIVADOVERSION="none: antq.toolchain.hwh emulation")
    ET.SubElement(root, "SYSTEMINFO", ARCH="zynq", DEVICE="7z020", NAME="ant", PACKAGE="clg400",
                  SPEEDGRADE="-1")
    ET.SubElement(root, "EXTERNALPORTS")
    ET.SubElement(root, "EXTERNALINTERFACES")
    modules = ET.SubElement(root, "MODULES")
    _accelerator(modules, cfg)
    _processing_system(modules)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    head = ('<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
            "<!-- EMULATION OVERLAY, not from Vivado: generated by `make emu-hwh` (antq hwh)\n"
            f"     from antq.core.regmap ({regmap.VLNV}, IP version {regmap.IP_VERSION}) for a "
            f"{cfg.rows}x{cfg.cols} array.\n"
            "     A real Vivado .hwh from `make hwh BOARD=...` replaces it on a board. -->\n")
    return head + body + "\n"


def write(path: Path | None = None, cfg: arch.ArrayConfig = arch.DEFAULT) -> Path:
    """Write the ``.hwh`` (default: the committed emulation one, :func:`emulation_hwh`)."""
    path = Path(path) if path is not None else emulation_hwh()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate(cfg))
    return path


def emulation_hwh() -> Path:
    """The committed ``.hwh`` of the emulated overlay (package data)."""
    return source_dir("overlay/emulation") / "ant.hwh"
