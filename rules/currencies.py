"""ISO 4217 codes of the currencies a card purchase can be made in."""

# Circulating currencies of ISO 4217 list one (2025), including ANG while it is being
# replaced by XCG. Fund codes (BOV, CHE, CLF, USN, ...) and the X-codes that are not money
# you can pay with (XAU, XDR, XTS, XXX, ...) are left out: no card purchase is made in them.
_LIST_ONE = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG
"""
ISO_4217_CODES: frozenset[str] = frozenset(_LIST_ONE.split())


def is_currency(code: str) -> bool:
    """Whether ``code`` is a known ISO 4217 currency code, upper-case as the standard has it."""
    return code in ISO_4217_CODES
