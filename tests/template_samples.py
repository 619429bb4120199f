"""Templates in the shapes the tests deploy: the seeds' autoupdate sample (2018 form) and the
template `az vmss create` builds (azure-cli's vm/_template_builder.py: a VNet, a public IP, a
load balancer with NAT pools, the scale set, outputs through reference() and providers())."""
from __future__ import annotations

SCHEMA = "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#"
NET = "Microsoft.Network"
POOL = "[concat(variables('lbID'), '/backendAddressPools/', variables('bePoolName'))]"


def seed_autoupdate() -> dict:
    return {
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": {
            "vmSku": {"type": "string", "defaultValue": "Standard_A1"},
            "vmssName": {"type": "string", "maxLength": 61},
            "instanceCount": {"type": "int", "minValue": 1, "maxValue": 100},
            "adminUsername": {"type": "string"},
            "adminPassword": {"type": "securestring"},
        },
        "variables": {
            "addressPrefix": "10.0.0.0/16", "subnetPrefix": "10.0.0.0/24",
            "virtualNetworkName": "[concat(parameters('vmssName'), 'vnet')]",
            "subnetName": "[concat(parameters('vmssName'), 'subnet')]",
            "loadBalancerName": "[concat(parameters('vmssName'), 'lb')]",
            "lbID": "[resourceId('Microsoft.Network/loadBalancers',variables('loadBalancerName'))]",
            "frontEndIPConfigID": "[concat(variables('lbID'),'/frontendIPConfigurations/loadBalancerFrontEnd')]",
            "sshProbeName": "sshProbe",
            "vnetID": "[resourceId('Microsoft.Network/virtualNetworks',variables('virtualNetworkName'))]",
            "subnetRef": "[concat(variables('vnetID'),'/subnets/',variables('subnetName'))]",
            "bePoolName": "[concat(parameters('vmssName'), 'bepool')]",
            "namingInfix": "[toLower(substring(concat(parameters('vmssName'), "
                           "uniqueString(resourceGroup().id)), 0, 9))]",
        },
        "resources": [
            {"type": f"{NET}/virtualNetworks", "name": "[variables('virtualNetworkName')]",
             "location": "[resourceGroup().location]", "apiVersion": "2017-04-01",
             "properties": {"addressSpace": {"addressPrefixes": ["[variables('addressPrefix')]"]},
                            "subnets": [{"name": "[variables('subnetName')]",
                                         "properties": {"addressPrefix": "[variables('subnetPrefix')]"}}]}},
            {"type": f"{NET}/loadBalancers", "name": "[variables('loadBalancerName')]",
             "location": "[resourceGroup().location]", "apiVersion": "2017-04-01",
             "dependsOn": ["[concat('Microsoft.Network/virtualNetworks/', variables('virtualNetworkName'))]"],
             "properties": {
                 "frontendIPConfigurations": [{"name": "LoadBalancerFrontEnd", "properties": {
                     "subnet": {"id": "[variables('subnetRef')]"}}}],
                 "backendAddressPools": [{"name": "[variables('bePoolName')]"}],
                 "loadBalancingRules": [{"name": "sshRule", "properties": {
                     "frontendIPConfiguration": {"id": "[variables('frontEndIPConfigID')]"},
                     "backendAddressPool": {"id": "[concat(variables('lbId'), '/backendAddressPools/', "
                                                  "variables('bePoolName'))]"},
                     "probe": {"id": "[concat(variables('lbId'), '/probes/', variables('sshProbeName'))]"},
                     "protocol": "Tcp", "frontendPort": 22, "backendPort": 22}}],
                 "probes": [{"name": "[variables('sshProbeName')]", "properties": {
                     "protocol": "Tcp", "port": 22, "intervalInSeconds": "5", "numberOfProbes": "2"}}]}},
            {"type": "Microsoft.Compute/virtualMachineScaleSets", "name": "[parameters('vmssName')]",
             "location": "[resourceGroup().location]", "apiVersion": "2018-06-01",
             "dependsOn": ["[concat('Microsoft.Network/loadBalancers/', variables('loadBalancerName'))]",
                           "[concat('Microsoft.Network/virtualNetworks/', variables('virtualNetworkName'))]"],
             "sku": {"name": "[parameters('vmSku')]", "tier": "Standard", "capacity": "[parameters('instanceCount')]"},
             "properties": {
                 "overprovision": "true",
                 "upgradePolicy": {"mode": "Automatic", "automaticOSUpgradePolicy": {
                     "enableAutomaticOSUpgrade": "true"},
                     "rollingUpgradePolicy": {"maxUnhealthyUpgradedInstancePercent": "0"}},
                 "virtualMachineProfile": {
                     "storageProfile": {"dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": "1023"}]},
                     "osProfile": {"computerNamePrefix": "[variables('namingInfix')]",
                                   "adminUsername": "[parameters('adminUsername')]",
                                   "adminPassword": "[parameters('adminPassword')]"},
                     "networkProfile": {
                         "healthProbe": {"id": "[concat(variables('lbId'), '/probes/', variables('sshProbeName'))]"},
                         "networkInterfaceConfigurations": [{"name": "nic", "properties": {
                             "primary": "true", "ipConfigurations": [{"name": "ipconfig", "properties": {
                                 "subnet": {"id": "[concat('/subscriptions/', subscription().subscriptionId, "
                                                  "'/resourceGroups/', resourceGroup().name, "
                                                  "'/providers/Microsoft.Network/virtualNetworks/', "
                                                  "variables('virtualNetworkName'), '/subnets/', "
                                                  "variables('subnetName'))]"},
                                 "loadBalancerBackendAddressPools": [{"id": POOL}]}}]}}]}}}},
        ],
        "outputs": {"probe": {"type": "string",
                              "value": "[concat(variables('lbId'), '/probes/', variables('sshProbeName'))]"}},
    }


def az_vmss_create(name: str = "vmss1") -> dict:
    """What `az vmss create -n vmss1 --image ... --admin-password ...` deploys (its shape)."""
    vnet, lb, ip = f"{name}VNET", f"{name}LB", f"{name}LBPublicIP"
    lb_id = f"[resourceId('Microsoft.Network/loadBalancers', '{lb}')]"
    return {
        "$schema": SCHEMA, "contentVersion": "1.0.0.0",
        "parameters": {"adminPassword": {"type": "securestring", "metadata": {"description": "Secure adminPassword"}}},
        "variables": {},
        "resources": [
            {"type": f"{NET}/virtualNetworks", "name": vnet, "location": "local", "apiVersion": "2015-06-15",
             "dependsOn": [], "tags": {},
             "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                            "subnets": [{"name": f"{name}Subnet", "properties": {"addressPrefix": "10.0.0.0/24"}}]}},
            {"type": f"{NET}/publicIPAddresses", "name": ip, "location": "local", "apiVersion": "2022-01-01",
             "tags": {}, "dependsOn": [], "sku": {"name": "Standard"},
             "properties": {"publicIPAllocationMethod": "Static"}},
            {"type": f"{NET}/loadBalancers", "name": lb, "location": "local", "apiVersion": "2022-01-01", "tags": {},
             "dependsOn": [f"Microsoft.Network/virtualNetworks/{vnet}", f"Microsoft.Network/publicIPAddresses/{ip}"],
             "sku": {"name": "Standard"},
             "properties": {
                 "backendAddressPools": [{"name": f"{lb}BEPool"}],
                 "frontendIPConfigurations": [{"name": "loadBalancerFrontEnd", "properties": {
                     "publicIPAddress": {"id": f"[resourceId('Microsoft.Network/publicIPAddresses', '{ip}')]"}}}],
                 "inboundNatPools": [{"name": f"{lb}NatPool", "properties": {
                     "frontendIPConfiguration": {"id": f"[concat({lb_id[1:-1]}, "
                                                       "'/frontendIPConfigurations/', 'loadBalancerFrontEnd')]"},
                     "protocol": "tcp", "frontendPortRangeStart": "50000", "frontendPortRangeEnd": "50119",
                     "backendPort": 22}}]}},
            {"type": "Microsoft.Compute/virtualMachineScaleSets", "name": name, "location": "local",
             "apiVersion": "2024-07-01", "tags": {},
             "dependsOn": [f"Microsoft.Network/virtualNetworks/{vnet}", f"Microsoft.Network/loadBalancers/{lb}"],
             "sku": {"name": "Standard_DS1_v2", "capacity": 2},
             "properties": {
                 "overprovision": True, "upgradePolicy": {"mode": "manual"},
                 "singlePlacementGroup": None, "orchestrationMode": "Uniform",
                 "virtualMachineProfile": {
                     "storageProfile": {"osDisk": {"createOption": "FromImage", "caching": "ReadWrite",
                                                   "managedDisk": {"storageAccountType": None}},
                                        "imageReference": {"publisher": "Debian", "offer": "debian-12",
                                                           "sku": "12", "version": "latest"}},
                     "osProfile": {"computerNamePrefix": name[:8], "adminUsername": "azureuser",
                                   "adminPassword": "[parameters('adminPassword')]"},
                     "networkProfile": {"networkInterfaceConfigurations": [{"name": f"{name[:8]}Nic", "properties": {
                         "ipConfigurations": [{"name": f"{name[:8]}IPConfig", "properties": {
                             "subnet": {"id": f"/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/"
                                              f"virtualNetworks/{vnet}/subnets/{name}Subnet"},
                             "loadBalancerBackendAddressPools": [{"id": f"[concat({lb_id[1:-1]}, "
                                                                        f"'/backendAddressPools/{lb}BEPool')]"}],
                             "loadBalancerInboundNatPools": [{"id": f"[concat({lb_id[1:-1]}, "
                                                                    f"'/inboundNatPools/{lb}NatPool')]"}]}}],
                         "primary": "true"}}]}}}},
        ],
        "outputs": {"VMSS": {"type": "object", "value": (
            f"[reference(resourceId('Microsoft.Compute/virtualMachineScaleSets', '{name}'),"
            "providers('Microsoft.Compute', 'virtualMachineScaleSets').apiVersions[0])]")}},
    }
