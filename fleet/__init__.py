"""The after-sales network: stations, rescue vans, partners, replacement trucks, faults.

Pure: plain frozen dataclasses and enums plus loaders for the bundled real geography and the
synthetic national demo network. No web or database framework is imported here.
"""

from fleet.contracts import (
    DEFAULT_BOOKING_PROBABILITY,
    DEFAULT_CONTRACT,
    RegisteredVehicle,
    RegistryError,
    ServiceContract,
    VehicleRegistry,
    VehicleTerms,
    normalise_plate,
)
from fleet.demo import NATIONAL_NETWORK_NAME, build_national_network
from fleet.distributions import DistributionKind, HoursDistribution
from fleet.faults import FaultCatalogue, FaultType, Part, load_fault_catalogue
from fleet.model import (
    DEFAULT_REPLACEMENT_THRESHOLD_HOURS,
    DEFAULT_SERVICE_RADIUS_KM,
    ContractRates,
    CustomerVehicle,
    FaultCategory,
    FaultGrade,
    GeoPoint,
    OpeningHours,
    PartnerCompany,
    PartnerRescueProvider,
    ReplacementTruck,
    RescueCapability,
    RescueVan,
    ServiceStation,
    StationGrade,
    TruckStatus,
    TruckType,
    VanCapability,
    VanStatus,
    VehicleClass,
    is_on_shift,
)
from fleet.network import Network, NetworkError

__all__ = [
    "DEFAULT_BOOKING_PROBABILITY",
    "DEFAULT_CONTRACT",
    "DEFAULT_REPLACEMENT_THRESHOLD_HOURS",
    "DEFAULT_SERVICE_RADIUS_KM",
    "NATIONAL_NETWORK_NAME",
    "ContractRates",
    "CustomerVehicle",
    "DistributionKind",
    "FaultCatalogue",
    "FaultCategory",
    "FaultGrade",
    "FaultType",
    "GeoPoint",
    "HoursDistribution",
    "Network",
    "NetworkError",
    "OpeningHours",
    "Part",
    "PartnerCompany",
    "PartnerRescueProvider",
    "RegisteredVehicle",
    "RegistryError",
    "ReplacementTruck",
    "RescueCapability",
    "RescueVan",
    "ServiceContract",
    "ServiceStation",
    "StationGrade",
    "TruckStatus",
    "TruckType",
    "VanCapability",
    "VanStatus",
    "VehicleClass",
    "VehicleRegistry",
    "VehicleTerms",
    "build_national_network",
    "is_on_shift",
    "load_fault_catalogue",
    "normalise_plate",
]
